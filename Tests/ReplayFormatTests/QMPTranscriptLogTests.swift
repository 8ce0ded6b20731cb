import ReplayFormat
import Testing

@Suite struct QMPTranscriptLogTests {
    @Test(arguments: QMPTranscriptLog.Way.allCases)
    func linesRoundTrip(_ way: QMPTranscriptLog.Way) throws {
        for client in [nil, 0, 1, 42] as [Int?] {
            let json = #"{"execute":"query-status","id":"a b"}"#
            let line = QMPTranscriptLog.line(microseconds: 1_234_567, client: client, way: way, json: Array(json.utf8))
            let parsed = try #require(QMPTranscriptLog.parse(line[...]), "\(line)")
            #expect(parsed.microseconds == 1_234_567 && parsed.client == client && parsed.way == way && parsed.json == json[...])
        }
    }

    @Test func theFormatIsAsDocumented() {
        #expect(QMPTranscriptLog.line(microseconds: 500_001, client: 3, way: .toQEMU, json: Array(#"{"execute":"cont"}"#.utf8))
                == #"(0.500001) 3 > {"execute":"cont"}"#)
        #expect(QMPTranscriptLog.line(microseconds: 2_000_000, client: nil, way: .event, json: Array(#"{"event":"STOP"}"#.utf8))
                == #"(2.000000) - ! {"event":"STOP"}"#)
    }

    /// A client's pretty-printed command stays one line with the same meaning.
    @Test func lineBreaksBecomeSpaces() {
        let line = QMPTranscriptLog.line(microseconds: 0, client: 1, way: .toQEMU, json: Array("{\r\n  \"execute\": \"stop\"\n}".utf8))
        #expect(!line.contains("\n") && !line.contains("\r"))
        #expect(QMPTranscriptLog.parse(line[...])?.json == "{    \"execute\": \"stop\" }")
    }

    @Test(arguments: ["", "(1.0) 1 > {}", "(1.000000) 1 > ", "(1.000000) x > {}", "(1.000000) -1 > {}",
                      "(1.000000) 1 ? {}", "(1.000000) 1 >> {}", "1.000000 1 > {}", "(1.000000)1 > {}"])
    func otherLinesAreNotParsed(_ text: String) {
        #expect(QMPTranscriptLog.parse(text[...]) == nil, "\(text)")
    }
}
