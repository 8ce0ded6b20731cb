import ControlAPI
import Testing

/// The CLI's reader of the supervisor's answers, fed whole and split at
/// every byte: the parts it yields must not depend on how reads cut them.
@Suite struct HTTPResponseReaderTests {
    /// Every part of `response`, fed in pieces cut at `cuts`, then the end of the connection.
    func parts(_ response: String, cuts: [Int] = []) throws -> [HTTPResponseReader.Part] {
        let bytes = Array(response.utf8)
        var reader = HTTPResponseReader()
        var out: [HTTPResponseReader.Part] = []
        var start = 0
        for cut in cuts + [bytes.count] where cut >= start {
            out += try reader.feed(bytes[start..<cut])
            start = cut
        }
        out += try reader.finish()
        return out
    }

    /// Head, the body's bytes joined, end: what a caller makes of the parts.
    func summary(_ parts: [HTTPResponseReader.Part]) -> (Int?, String, Bool) {
        var status: Int?, body: [UInt8] = [], ended = false
        for p in parts {
            switch p {
            case .head(let s): status = s
            case .body(let b): body += b
            case .end: ended = true
            }
        }
        return (status, String(decoding: body, as: UTF8.self), ended)
    }

    static let responses: [(String, Int, String)] = [
        ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": true}", 200, "{\"a\": true}"),
        ("HTTP/1.1 422 Unprocessable Entity\r\ncontent-length: 2\r\n\r\n{}", 422, "{}"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n", 200, "hello, world"),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n1a\r\n{\"type\":\"Normal\"}\n{\"x\":1}\n\r\n0\r\n\r\n", 200, "{\"type\":\"Normal\"}\n{\"x\":1}\n"),
        ("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", 200, "until the end"),
        ("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", 204, ""),
        ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404, ""),
    ]

    @Test(arguments: responses.indices)
    func theSameAnswerHoweverReadsCutIt(_ i: Int) throws {
        let (text, status, body) = Self.responses[i]
        let whole = summary(try parts(text))
        #expect(whole.0 == status && whole.1 == body && whole.2, "\(whole)")
        for cut in 0...text.utf8.count {
            let split = summary(try parts(text, cuts: [cut]))
            #expect(split.0 == status && split.1 == body && split.2, "cut at \(cut): \(split)")
        }
        let bytewise = summary(try parts(text, cuts: Array(0...text.utf8.count)))
        #expect(bytewise.0 == status && bytewise.1 == body && bytewise.2)
    }

    /// Once the response is complete nothing after it is read as body.
    @Test func bytesAfterACompleteResponseAreNotItsBody() throws {
        var reader = HTTPResponseReader()
        let got = try reader.feed(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA".utf8))
        #expect(got == [.head(status: 200), .body(Array("ok".utf8)), .end])
        #expect(reader.isComplete)
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        "HTTP/1.1 200 OK\r\nContent-Le",
        "",
    ])
    func anAnswerCutShortIsAnError(_ text: String) {
        #expect(throws: HTTPResponseReader.Malformed.self) { try parts(text) }
    }

    @Test(arguments: [
        "SSH-2.0-OpenSSH\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
    ])
    func whatIsNoHTTPAnswerIsRefused(_ text: String) {
        #expect(throws: HTTPResponseReader.Malformed.self) { try parts(text) }
    }

    @Test func anEndlessHeadIsRefused() {
        var reader = HTTPResponseReader()
        let line = Array("X-Filler: \(String(repeating: "x", count: 1000))\r\n".utf8)
        #expect(throws: HTTPResponseReader.Malformed.self) {
            _ = try reader.feed(Array("HTTP/1.1 200 OK\r\n".utf8))
            for _ in 0..<100 { _ = try reader.feed(line) }
        }
    }
}
