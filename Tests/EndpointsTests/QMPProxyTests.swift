import NIOCore
import NIOEmbedded
import Testing
@testable import Endpoints
@testable import QMP

/// The proxy in front of vtarget's real `QMPClient`, with QEMU's monitor and
/// every proxy client on embedded channels of one loop: the test plays QEMU,
/// answering what it is asked, in whatever order it likes. Synchronous, as
/// `SerialHubTests` are, for the same reason.
@Suite(.timeLimit(.minutes(1))) struct QMPProxyTests {
    let loop = EmbeddedEventLoop()
    /// vtarget's end of QEMU's monitor: outbound is what QEMU is asked, inbound what it says.
    let monitor: EmbeddedChannel
    let qmp: QMPClient
    let proxy: QMPProxy

    static let version = #"{"qemu": {"major": 8, "minor": 2, "micro": 2}, "package": "Debian 1:8.2.2"}"#

    /// A client past its handshake, which vtarget's own start-up has done (and `QMPClientTests` test).
    init() throws { try self.init(transcript: nil) }

    init(transcript: QMPTranscript?) throws {
        let (handler, core, events) = QMPClient.makeHandler()
        monitor = try EmbeddedChannel.connected([handler], on: loop)
        try monitor.writeInbound(ByteBuffer(string: #"{"QMP": {"version": \#(Self.version), "capabilities": ["oob"]}}"# + "\r\n"))
        qmp = QMPClient(channel: monitor, core: core, events: events)
        proxy = QMPProxy(qmp: qmp, loop: loop, transcript: transcript)
    }

    static func json(_ text: String) throws -> JSONValue { try JSONValue.parse(Array(text.utf8)) }

    static func messages(in buffer: ByteBuffer) throws -> [JSONValue] {
        var splitter = JSONStreamSplitter()
        let split = splitter.append(buffer.readableBytesView)
        #expect(split.failure == nil)
        return try split.messages.map { try JSONValue.parse($0) }
    }

    // MARK: playing QEMU

    /// The commands QEMU was asked since last asked.
    func asked() throws -> [JSONValue] {
        var out: [JSONValue] = []
        while let b = try monitor.readOutbound(as: ByteBuffer.self) { out += try Self.messages(in: b) }
        return out
    }

    /// QEMU answers `command`, one it was asked, with `value` (and its id, if it had one).
    func answer(_ command: JSONValue, _ value: String) throws {
        let id = command["id"].map { #", "id": "# + String(decoding: $0.serialized(), as: UTF8.self) } ?? ""
        try qemuSays(#"{"return": \#(value)\#(id)}"#)
    }

    func qemuSays(_ text: String) throws {
        try monitor.writeInbound(ByteBuffer(string: text + "\r\n"))
    }

    // MARK: the proxy's clients

    /// A client that has read its greeting; negotiated unless told otherwise.
    func client(negotiated: Bool = true) throws -> EmbeddedChannel {
        let channel = try EmbeddedChannel.connected([QMPProxy.ClientHandler(proxy: proxy)], on: loop)
        let greeting = try heard(channel)
        try #require(greeting.count == 1 && greeting[0]["QMP"] != nil)
        if negotiated {
            try say(#"{"execute": "qmp_capabilities"}"#, to: channel)
            try #require(try heard(channel) == [Self.json(#"{"return": {}}"#)])
        }
        return channel
    }

    func say(_ text: String, to client: EmbeddedChannel) throws {
        try client.writeInbound(ByteBuffer(string: text))
    }

    /// What `client` was sent since last asked; every message ends its line as QEMU's do.
    func heard(_ client: EmbeddedChannel) throws -> [JSONValue] {
        var out: [JSONValue] = []
        while let b = try client.readOutbound(as: ByteBuffer.self) {
            #expect(String(buffer: b).hasSuffix("}\r\n"))
            out += try Self.messages(in: b)
        }
        return out
    }

    // MARK: tests

    @Test func eachClientIsGreetedAndNegotiatesOnItsOwn() throws {
        let a = try client(negotiated: false), b = try client(negotiated: false)
        #expect(try asked() == [])
        try say(#"{"execute": "query-status", "id": 1}"#, to: a)
        #expect(try heard(a) == [Self.json(#"{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}, "id": 1}"#)])
        try say(#"{"execute": "qmp_capabilities", "id": 2}"#, to: a)
        #expect(try heard(a) == [Self.json(#"{"return": {}, "id": 2}"#)])
        try say(#"{"execute": "qmp_capabilities"}"#, to: a)
        #expect(try heard(a) == [Self.json(#"{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}"#)])
        #expect(try heard(b) == [])
        #expect(try asked() == [], "QEMU negotiated once, with vtarget")
        #expect(proxy.clients.count == 2)
    }

    @Test func theGreetingCarriesQEMUsVersionButNoOutOfBand() throws {
        let channel = try EmbeddedChannel.connected([QMPProxy.ClientHandler(proxy: proxy)], on: loop)
        #expect(try heard(channel) == [Self.json(#"{"QMP": {"version": \#(Self.version), "capabilities": []}}"#)])
    }

    @Test func idsAreRewrittenAndEachClientGetsItsOwnRepliesInOrder() throws {
        let a = try client(), b = try client()
        try say(#"{"execute": "stop", "id": "same"}"#, to: a)
        try say(#"{"execute": "cont", "id": "same"}"#, to: b)
        try say(#"{"execute": "system_reset", "id": {"seq": [1, 2]}}"#, to: b)
        try say(#"{"execute": "query-block"}"#, to: a)
        let sent = try asked()
        #expect(sent.map { $0["execute"]?.stringValue } == ["stop", "cont", "system_reset", "query-block"])
        let ids = sent.compactMap { $0["id"] }
        #expect(ids.count == 3 && Set(ids.map(\.description)).count == 3 && !ids.contains(.string("same")),
                "vtarget's own ids, one per command but the first (sent alone, it needs none): \(sent)")

        // QEMU answering out of order: each client still hears in the order it asked.
        try answer(sent[2], #"{"did": "system_reset"}"#)
        try answer(sent[3], "[]")
        #expect(try heard(b) == [], "b's cont is owed first")
        #expect(try heard(a) == [], "a's stop is owed first")
        try answer(sent[1], #"{"did": "cont"}"#)
        try answer(sent[0], #"{"did": "stop"}"#)
        #expect(try heard(a) == [Self.json(#"{"return": {"did": "stop"}, "id": "same"}"#), Self.json(#"{"return": []}"#)])
        #expect(try heard(b) == [Self.json(#"{"return": {"did": "cont"}, "id": "same"}"#),
                                       Self.json(#"{"return": {"did": "system_reset"}, "id": {"seq": [1, 2]}}"#)])
    }

    @Test func qemuErrorsReachTheClientThatAskedWithClassAndDescription() throws {
        let a = try client(), b = try client()
        try say(#"{"execute": "device_del", "arguments": {"id": "nope"}, "id": "d"}"#, to: a)
        let sent = try asked()
        #expect(sent.count == 1)
        #expect(try sent.first?["arguments"] == Self.json(#"{"id": "nope"}"#))
        #expect(sent.first?["id"] == nil, "a lone command goes without an id")
        try qemuSays(#"{"error": {"class": "DeviceNotFound", "desc": "Device 'nope' not found"}}"#)
        #expect(try heard(a) == [Self.json(#"{"error": {"class": "DeviceNotFound", "desc": "Device 'nope' not found"}, "id": "d"}"#)])
        #expect(try heard(b) == [])
    }

    @Test func eventsGoToEveryNegotiatedClient() throws {
        let a = try client(), b = try client(), unnegotiated = try client(negotiated: false)
        let stop = #"{"event": "STOP", "timestamp": {"seconds": 1700000000, "microseconds": 5}}"#
        proxy.broadcast(try Self.json(stop))
        loop.run()
        #expect(try heard(a) == [Self.json(stop)])
        #expect(try heard(b) == [Self.json(stop)])
        #expect(try heard(unnegotiated) == [])

        // An event between a command and its reply is not the reply.
        try say(#"{"execute": "cont", "id": 9}"#, to: a)
        let sent = try asked()
        proxy.broadcast(try Self.json(#"{"event": "RESUME"}"#))
        loop.run()
        try answer(sent[0], "{}")
        #expect(try heard(a) == [Self.json(#"{"event": "RESUME"}"#), Self.json(#"{"return": {}, "id": 9}"#)])
    }

    /// See `QMPConnectionCore.cacheableQueries`: read-only queries cost QEMU
    /// one trip until an event or another command, whichever client sends them.
    @Test func readOnlyQueriesAreAnsweredFromCacheUntilSomethingChanges() throws {
        let a = try client(), b = try client()
        try say(#"{"execute": "query-status", "id": "a1"}"#, to: a)
        try say(#"{"execute": "query-status", "id": "b1"}"#, to: b)
        var sent = try asked()
        #expect(sent.count == 1, "b's query rides on a's")
        try answer(sent[0], #"{"status": "paused", "running": false}"#)
        #expect(try heard(a) == [Self.json(#"{"return": {"status": "paused", "running": false}, "id": "a1"}"#)])
        #expect(try heard(b) == [Self.json(#"{"return": {"status": "paused", "running": false}, "id": "b1"}"#)])

        try say(#"{"execute": "query-status", "id": "a2"}"#, to: a)
        #expect(try asked() == [], "answered from the cache")
        #expect(try heard(a) == [Self.json(#"{"return": {"status": "paused", "running": false}, "id": "a2"}"#)])

        // An event: QEMU is asked again.
        try qemuSays(#"{"event": "RESUME"}"#)
        try say(#"{"execute": "query-status", "id": "a3"}"#, to: a)
        sent = try asked()
        #expect(sent.map { $0["execute"]?.stringValue } == ["query-status"])
        try answer(sent[0], #"{"status": "running", "running": true}"#)
        #expect(try heard(a) == [Self.json(#"{"return": {"status": "running", "running": true}, "id": "a3"}"#)])

        // Another client's command: QEMU is asked again.
        try say(#"{"execute": "stop", "id": "b2"}"#, to: b)
        try answer(try asked()[0], "{}")
        try say(#"{"execute": "query-status", "id": "a4"}"#, to: a)
        #expect(try asked().map { $0["execute"]?.stringValue } == ["query-status"])
    }

    @Test func garbageGetsAnErrorAndTheClientStaysUsable() throws {
        let a = try client()
        let notObject = #"QMP input must be a JSON object with \"execute\""#
        let cases: [(String, String)] = [
            ("hello\r\n", #"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid QMP input"}}"#),
            (#"{"execute": }"#, #"{"error": {"class": "GenericError", "desc": "JSON parse error"}}"#),
            ("[1, 2]", #"{"error": {"class": "GenericError", "desc": "\#(notObject)"}}"#),
            (#"{"execute": 3, "id": 1}"#, #"{"error": {"class": "GenericError", "desc": "\#(notObject)"}, "id": 1}"#),
            (#"{"execute": "stop", "id": 2, "bogus": true}"#,
             #"{"error": {"class": "GenericError", "desc": "QMP input member 'bogus' is unexpected"}, "id": 2}"#),
        ]
        for (input, reply) in cases {
            try say(input, to: a)
            #expect(try heard(a) == [Self.json(reply)], "for \(input)")
        }
        #expect(try asked() == [], "none of it reaches QEMU")

        try say(#"{"execute": "query-name", "id": 3}"#, to: a)
        try answer(try asked()[0], #"{"name": "board"}"#)
        #expect(try heard(a) == [Self.json(#"{"return": {"name": "board"}, "id": 3}"#)])
    }

    /// QEMU runs a command that arrives in the same write as garbage after
    /// it, then reports the garbage: so does the proxy, in that order.
    @Test func aCommandBeforeGarbageInTheSameWriteIsStillRun() throws {
        let a = try client()
        try say(#"{"execute": "stop", "id": 4} oops"#, to: a)
        let sent = try asked()
        #expect(sent.map { $0["execute"]?.stringValue } == ["stop"])
        try answer(sent[0], "{}")
        let replies = try heard(a)
        #expect(try replies.first == Self.json(#"{"return": {}, "id": 4}"#), "\(replies)")
        #expect(replies.last?["error"]?["class"] == .string("GenericError"), "\(replies)")
    }

    @Test func aClientLeavingWithAReplyOwedHurtsNoOneElse() throws {
        let a = try client(), b = try client()
        try say(#"{"execute": "stop", "id": 1}"#, to: a)
        let owed = try asked()
        try a.close().wait()
        #expect(proxy.clients.count == 1)
        try answer(owed[0], "{}")
        try say(#"{"execute": "cont", "id": 2}"#, to: b)
        try answer(try asked()[0], "{}")
        #expect(try heard(b) == [Self.json(#"{"return": {}, "id": 2}"#)])
    }

    @Test func aClientThatHalfClosesGetsWhatItIsOwedThenTheEnd() throws {
        let a = try client()
        try say(#"{"execute": "stop", "id": 1}"#, to: a)
        a.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(a.isActive, "a reply is owed")
        try answer(try asked()[0], "{}")
        #expect(try heard(a) == [Self.json(#"{"return": {}, "id": 1}"#)])
        #expect(!a.isActive)
    }

    /// A client's burst reaches QEMU in one write (up to the in-flight cap),
    /// the rest as answers free slots, one write per read of QEMU's; the
    /// replies in one read of QEMU's reach the client in one write.
    @Test func aBurstAndItsRepliesGoOutWithOneFlushPerRead() throws {
        let a = try client()
        let toQEMU = FlushCounter(), toClient = FlushCounter()
        try monitor.pipeline.syncOperations.addHandler(toQEMU, position: .first)
        try a.pipeline.syncOperations.addHandler(toClient, position: .first)
        try say((0..<10).map { #"{"execute": "system_reset", "id": \#($0)}"# }.joined(), to: a)
        let first = try asked()
        #expect(first.count == QMPClient.maxInFlight && toQEMU.flushes == 1, "\(first.count) commands, \(toQEMU.flushes) flushes")
        try qemuSays(first.map { c in #"{"return": {}\#(c["id"].map { ", \"id\": \($0)" } ?? "")}"# }.joined(separator: "\r\n"))
        #expect(try heard(a) == (0..<8).map { try Self.json(#"{"return": {}, "id": \#($0)}"#) })
        #expect(toClient.flushes == 1)
        let rest = try asked()
        #expect(rest.count == 2 && toQEMU.flushes == 2, "\(rest.count) commands, \(toQEMU.flushes) flushes")
        for c in rest { try answer(c, "{}") }
        #expect(try heard(a) == (8..<10).map { try Self.json(#"{"return": {}, "id": \#($0)}"#) })
    }

    /// Every byte costs QEMU time (it reads its monitor a byte per system
    /// call): the proxy's commands are compact, a lone one has no id, the
    /// others' ids are small and reused.
    @Test func commandsToQEMUAreCompactWithSmallIdsGivenAgain() throws {
        let a = try client()
        try say(#"{"execute": "stop", "id": "a-long-client-id"}"#, to: a)
        let text = try monitor.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }
        #expect(text == #"{"execute":"stop"}"#)
        try qemuSays(#"{"return": {}}"#)
        try say(#"{"execute": "cont", "id": 1} {"execute": "device_del", "arguments": {"id": "x"}, "id": 2} {"execute": "cont", "id": 3}"#, to: a)
        let sent = try asked()
        #expect(sent.map { $0["id"] } == [nil, .number(0), .number(1)], "the id-less place is free again, then 0 and 1")
        #expect(sent[1] == (try Self.json(#"{"execute": "device_del", "arguments": {"id": "x"}, "id": 0}"#)))
        try answer(sent[1], "{}")
        try answer(sent[2], "{}")
        try answer(sent[0], "{}")
        try say(#"{"execute": "stop", "id": 4} {"execute": "stop", "id": 5}"#, to: a)
        #expect(try asked().map { $0["id"] } == [nil, .number(1)], "answered, ids are given again: the last freed (1) first")
        #expect(try heard(a) == ["a-long-client-id", "1", "2", "3"].map { id in
            try Self.json(#"{"return": {}, "id": \#(id == "a-long-client-id" ? "\"\(id)\"" : id)}"#)
        })
    }

    @Test func qemuGoneFailsWhatIsOwedAndWhatComesNext() throws {
        let a = try client()
        try say(#"{"execute": "stop", "id": 1}"#, to: a)
        try monitor.close().wait()
        let gone = #"{"class": "GenericError", "desc": "QMP connection closed: QEMU closed the monitor"}"#
        #expect(try heard(a) == [Self.json(#"{"error": \#(gone), "id": 1}"#)])
        try say(#"{"execute": "query-status", "id": 2}"#, to: a)
        #expect(try heard(a) == [Self.json(#"{"error": \#(gone), "id": 2}"#)])
    }
}

/// Counts the flushes that pass it: one per write system call.
final class FlushCounter: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = ByteBuffer
    private(set) var flushes = 0
    func flush(context: ChannelHandlerContext) {
        flushes += 1
        context.flush()
    }
}
