import Testing
@testable import QMP

/// The splitter scans each chunk where it lies and carries only an
/// unfinished text over: whatever way a stream is cut, the same texts come out.
@Suite struct JSONStreamSplitterChunkingTests {
    /// Strings holding brackets, quotes and escapes; nesting; whitespace between.
    static let texts = [
        #"{"execute": "query-status", "id": 1}"#,
        #"{"a": "}{\"", "b": ["]", {"c": "\\"}]}"#,
        #"[1, [2, [3]], {"x": "y"}]"#,
        #"{"return": {}, "id": "vt-7"}"#,
    ]
    static let stream = Array(texts.joined(separator: "\r\n \t").utf8) + Array("\r\n".utf8)

    func split(_ chunks: [ArraySlice<UInt8>]) -> [String] {
        var s = JSONStreamSplitter()
        var out: [String] = []
        for c in chunks {
            let r = s.append(c)
            #expect(r.failure == nil)
            out += r.messages.map { String(decoding: $0, as: UTF8.self) }
        }
        return out
    }

    @Test func everyCutInTwoGivesTheSameTexts() {
        let b = Self.stream
        for i in 0...b.count {
            #expect(split([b[..<i], b[i...]]) == Self.texts, "cut at \(i)")
        }
    }

    @Test func everyCutInThreeGivesTheSameTexts() {
        let b = Self.stream
        for i in stride(from: 0, through: b.count, by: 3) {
            for j in i...b.count {
                #expect(split([b[..<i], b[i..<j], b[j...]]) == Self.texts, "cuts at \(i), \(j)")
            }
        }
    }

    @Test func oneByteAtATimeGivesTheSameTexts() {
        #expect(split(Self.stream.indices.map { Self.stream[$0...$0] }) == Self.texts)
    }

    /// An unfinished text is carried from chunk to chunk up to the limit, then refused.
    @Test func anUnfinishedTextCarriedOverCountsAgainstTheLimit() {
        var s = JSONStreamSplitter(maxMessageBytes: 32)
        #expect(s.append(Array(#"{"a": "0123456789"#.utf8)).failure == nil)
        #expect(s.append(Array(#"0123456789"#.utf8)).failure == nil)
        #expect(s.append(Array(#"0123456789"#.utf8)).failure == .tooLarge)
        // Afresh after the failure.
        #expect(s.append(Array(#"{"b": 1}"#.utf8)).messages.count == 1)
    }

    @Test func garbageInACarriedOverChunkDropsTheRestAndStartsAfresh() {
        var s = JSONStreamSplitter()
        #expect(s.append(Array(#"{"a": 1"#.utf8)).messages.isEmpty)
        let r = s.append(Array(#"} x {"b": 2}"#.utf8))
        #expect(r.messages.map { String(decoding: $0, as: UTF8.self) } == [#"{"a": 1}"#])
        #expect(r.failure == .unbalanced)
        #expect(s.append(Array(#"{"c": 3}"#.utf8)).messages.map { String(decoding: $0, as: UTF8.self) } == [#"{"c": 3}"#])
    }
}
