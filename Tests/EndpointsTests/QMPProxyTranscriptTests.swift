import NIOCore
import NIOEmbedded
import Testing
@testable import Endpoints
@testable import QMP

/// The proxy's transcript hook (a recording's QMP conversation): every line
/// a client sends or receives, as it was sent or received, and every event once.
@Suite(.timeLimit(.minutes(1))) struct QMPProxyTranscriptTests {
    struct Line: Equatable, CustomStringConvertible {
        var client: Int?
        var direction: QMPTranscriptDirection
        var text: String
        var description: String { "\(client.map(String.init) ?? "-") \(direction) \(text)" }
    }

    /// Written on the embedded loop, the test's own thread.
    final class Heard: @unchecked Sendable {
        var lines: [Line] = []
        var times: [NIODeadline] = []
    }

    @Test func everyLineIsHeardAsTheClientSentOrReceivedIt() throws {
        let heard = Heard()
        let t = try QMPProxyTests { client, direction, line, at in
            heard.lines.append(Line(client: client, direction: direction, text: String(buffer: line)))
            heard.times.append(at)
        }
        let a = try t.client(), b = try t.client(negotiated: false)
        try t.say(#"{"execute": "stop",   "id": {"mine": 1}}"#, to: a)
        try t.answer(try t.asked()[0], "{}")
        try t.say(#"{"execute": "bogus" "#, to: b)  // not a whole line yet: nothing heard
        t.proxy.broadcast(try QMPProxyTests.json(#"{"event": "STOP"}"#))
        t.loop.run()
        let greeting = #"{"QMP":{"capabilities":[],"version":\#(String(decoding: try QMPProxyTests.json(QMPProxyTests.version).serialized(), as: UTF8.self))}}"#
        #expect(heard.lines == [
            Line(client: 1, direction: .fromQEMU, text: greeting),
            Line(client: 1, direction: .toQEMU, text: #"{"execute": "qmp_capabilities"}"#),
            Line(client: 1, direction: .fromQEMU, text: #"{"return": {}}"#),
            Line(client: 2, direction: .fromQEMU, text: greeting),
            Line(client: 1, direction: .toQEMU, text: #"{"execute": "stop",   "id": {"mine": 1}}"#),
            Line(client: 1, direction: .fromQEMU, text: #"{"return": {}, "id": {"mine":1}}"#),
            Line(client: nil, direction: .event, text: #"{"event":"STOP"}"#),
        ])
        #expect(zip(heard.times, heard.times.dropFirst()).allSatisfy { $0 <= $1 }, "monotonic, in order")
        #expect(try t.heard(a).last == QMPProxyTests.json(#"{"event": "STOP"}"#), "the client still gets it")
    }

    @Test func withoutATranscriptNothingChanges() throws {
        let t = try QMPProxyTests()
        let a = try t.client()
        try t.say(#"{"execute": "stop", "id": 1}"#, to: a)
        try t.answer(try t.asked()[0], "{}")
        #expect(try t.heard(a) == [QMPProxyTests.json(#"{"return": {}, "id": 1}"#)])
    }
}
