import NIOCore
import Testing
@testable import QMP

/// The QMP client against `StubQMPServer`: the protocol's corners (replies
/// out of order, the in-flight limit, errors, a server that dies or talks
/// nonsense) that real QEMU cannot be made to show on cue.
@Suite(.timeLimit(.minutes(3))) struct QMPClientStubTests {
    /// What each of `count` concurrent calls of `call` ended with, by index.
    func concurrently(_ count: Int, _ call: @escaping @Sendable (Int) async throws(QMPError) -> JSONValue)
        -> Task<[Int: Result<JSONValue, QMPError>], Never> {
        Task {
            await withTaskGroup(of: (Int, Result<JSONValue, QMPError>).self) { g in
                for i in 0..<count {
                    g.addTask {
                        do throws(QMPError) { return (i, .success(try await call(i))) } catch { return (i, .failure(error)) }
                    }
                }
                return await g.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
        }
    }

    @Test func negotiatesAfterTheGreeting() async throws {
        try await StubQMPServer.with { stub, qmp in
            #expect(qmp.greeting == StubQMPServer.greeting)
            let requests = try await stub.requests(atLeast: 1)
            #expect(requests.map { $0["execute"]?.stringValue } == ["qmp_capabilities"])
            if case .number = requests[0]["id"] {} else { Issue.record("a command's id is a small number: \(requests[0])") }
        }
    }

    @Test func commandsSentWithTheNegotiationRunAfterItInOrder() async throws {
        try await StubQMPServer.with(script: ["cont": .reply(.object([:])), "query-name": .reply(.object([:]))], then: ["cont", "query-name"]) { stub, _ in
            let requests = try await stub.requests(atLeast: 3)
            #expect(requests.map { $0["execute"]?.stringValue } == ["qmp_capabilities", "cont", "query-name"])
        }
    }

    @Test func aRefusedNegotiationFailsTheHandshake() async throws {
        let stub = try await StubQMPServer.start(script: ["qmp_capabilities": .error("GenericError", "no capabilities today")])
        let (channel, core, events) = try await stub.attachClient()
        await #expect(throws: QMPError.command(errorClass: "GenericError", description: "no capabilities today")) {
            _ = try await QMPClient.handshake(on: channel, core: core, events: events)
        }
        try await stub.shutdown()
    }

    @Test func aServerThatHangsUpBeforeItsGreetingFailsTheHandshake() async throws {
        let stub = try await StubQMPServer.start(greeting: nil)
        let (channel, core, events) = try await stub.attachClient()
        stub.hangUp()
        await #expect(throws: QMPError.disconnected("QEMU closed the monitor")) {
            _ = try await QMPClient.handshake(on: channel, core: core, events: events)
        }
        try await stub.shutdown()
    }

    @Test func repliesFindTheirCommandsWhateverOrderTheyComeIn() async throws {
        try await StubQMPServer.with(script: ["human-monitor-command": .hold]) { stub, qmp in
            let replies = concurrently(8) { i throws(QMPError) in .string(try await qmp.hmp("echo \(i)")) }
            let held = try await stub.held(atLeast: 8)
            let ids = held.compactMap { $0["id"] }.map(\.description)
            #expect(ids.count == 7 && Set(ids).count == 7, "one command without an id, one id each for the rest: \(held)")
            // Answered last first, each with its own command line, and a reply for no one in between.
            stub.send(#"{"return": "for no one", "id": "vt-999"}"#)
            for request in held.reversed() {
                let line = request["arguments"]?["command-line"]?.stringValue ?? "?"
                stub.release(request, with: .reply(.string("said \(line)")))
            }
            let got = await replies.value
            for i in 0..<8 { #expect(got[i] == .success(.string("said echo \(i)"))) }
        }
    }

    /// QEMU reads its monitor a byte at a time: a lone command (the latency
    /// case) goes without an id, and the one reply without an id is its, in
    /// whatever order the replies come.
    @Test func aLoneCommandGoesWithoutAnIdAndTheReplyWithoutOneIsIts() async throws {
        try await StubQMPServer.with(script: ["stop": .hold, "cont": .hold]) { stub, qmp in
            let stopped = Task { try await qmp.execute("stop") }
            let first = try await stub.held(atLeast: 1)[0]
            #expect(first["id"] == nil, "nothing else in flight: \(first)")
            let resumed = Task { try await qmp.execute("cont") }
            let second = try await stub.held(atLeast: 2)[1]
            #expect(second["id"] != nil, "one command without an id at a time: \(second)")
            // A reply for no one, with an id never given, is dropped.
            stub.send(#"{"return": "for no one", "id": 77}"#)
            stub.release(second, with: .reply(.string("resumed")))
            stub.release(first, with: .reply(.string("stopped")))
            #expect((try? await resumed.value) == .string("resumed"))
            #expect((try? await stopped.value) == .string("stopped"))
            // Answered, its place is free for the next lone command.
            let again = Task { try await qmp.execute("stop") }
            let third = try await stub.held(atLeast: 1)[0]
            #expect(third["id"] == nil, "\(third)")
            stub.release(third, with: .reply(.string("again")))
            #expect((try? await again.value) == .string("again"))
        }
    }

    @Test func atMostEightCommandsAreInFlight() async throws {
        try await StubQMPServer.with(script: ["stop": .hold]) { stub, qmp in
            let all = concurrently(12) { _ throws(QMPError) in try await qmp.execute("stop") }
            _ = try await stub.held(atLeast: QMPClient.maxInFlight)
            // Each reply frees one slot, for one more command.
            for _ in 0..<12 { stub.release(try await stub.held(atLeast: 1)[0], with: .reply(.object([:]))) }
            #expect(await all.value.values.allSatisfy { $0 == .success(.object([:])) })
            #expect(stub.maxOutstanding == QMPClient.maxInFlight)
            let requests = try await stub.requests(atLeast: 13)
            #expect(requests.count == 13)
        }
    }

    @Test func aDelayedReplyArrivesAndOthersPassIt() async throws {
        let slow = StubQMPServer.Answer.after(.milliseconds(50), .reply(.object(["name": .string("slow")])))
        try await StubQMPServer.with(script: ["query-name": slow, "stop": .reply(.string("quick"))]) { stub, qmp in
            async let name = qmp.execute("query-name")
            async let stopped = qmp.execute("stop")
            let (quick, slowly) = try await (stopped, name)
            #expect(quick == .string("quick"))
            #expect(slowly == .object(["name": .string("slow")]))
        }
    }

    @Test func eventsArriveOnTheirOwnStreamNotAsReplies() async throws {
        try await StubQMPServer.with(script: ["stop": .hold]) { stub, qmp in
            var events = qmp.events.makeAsyncIterator()
            async let stopped = qmp.execute("stop")
            let held = try await stub.held(atLeast: 1)
            let id = held[0]["id"]?.description ?? "null"
            stub.send(#"{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}"#)
            // Even one that carries the pending command's id.
            stub.send(#"{"event": "JOB_STATUS_CHANGE", "data": {"status": "ready"}, "id": \#(id)}"#)
            #expect(await events.next()?["event"] == .string("STOP"))
            #expect(await events.next()?["event"] == .string("JOB_STATUS_CHANGE"))
            stub.release(held[0], with: .reply(.object(["stopped": .bool(true)])))
            let reply = try await stopped
            #expect(reply == .object(["stopped": .bool(true)]))
        }
    }

    @Test func errorsCarryTheirClassAndDescription() async throws {
        let script: [String: StubQMPServer.Answer] = [
            "device_del": .error("DeviceNotFound", "Device 'x' not found"),
            "query-odd": .message(["neither": .bool(true)]),
            "query-name": .reply(.object(["name": .string("board")])),
        ]
        try await StubQMPServer.with(script: script) { _, qmp in
            await #expect(throws: QMPError.command(errorClass: "DeviceNotFound", description: "Device 'x' not found")) {
                try await qmp.execute("device_del", arguments: .object(["id": .string("x")]))
            }
            await #expect(throws: QMPError.command(errorClass: "CommandNotFound", description: "The command nope has not been found")) {
                try await qmp.execute("nope")
            }
            let odd = await #expect(throws: QMPError.self) { try await qmp.execute("query-odd") }
            if case .protocolViolation = odd {} else { Issue.record("a reply with neither return nor error gave \(String(describing: odd))") }
            // The connection is still good after all three.
            let name = try await qmp.execute("query-name")
            #expect(name == .object(["name": .string("board")]))
        }
    }

    @Test func theServerDyingFailsEveryPendingCommand() async throws {
        try await StubQMPServer.with(script: ["stop": .hold]) { stub, qmp in
            // Eight sent and held, four waiting for a slot.
            let all = concurrently(12) { _ throws(QMPError) in try await qmp.execute("stop") }
            _ = try await stub.held(atLeast: QMPClient.maxInFlight)
            stub.hangUp()
            let outcomes = await all.value
            #expect(outcomes.count == 12)
            #expect(outcomes.values.allSatisfy { $0 == .failure(.disconnected("QEMU closed the monitor")) })
            await #expect(throws: QMPError.disconnected("QEMU closed the monitor")) { try await qmp.execute("cont") }
            for await _ in qmp.events {}  // the event stream ends too
        }
    }

    @Test func aCommandThatKillsTheServerFailsInsteadOfHanging() async throws {
        try await StubQMPServer.with(script: ["quit": .hangUp]) { _, qmp in
            await #expect(throws: QMPError.disconnected("QEMU closed the monitor")) { try await qmp.execute("quit") }
        }
    }

    @Test func malformedJSONFailsPendingCommandsAndEndsTheConnection() async throws {
        try await StubQMPServer.with(script: ["stop": .hold]) { stub, qmp in
            let stopped = Task { try await qmp.execute("stop") }
            _ = try await stub.held(atLeast: 1)
            stub.send("this is not JSON")
            await #expect(throws: QMPError.protocolViolation("QEMU sent malformed JSON")) { try await stopped.value }
            try await qmp.channel.closeFuture.get()
            await #expect(throws: QMPError.protocolViolation("QEMU sent malformed JSON")) { try await qmp.execute("cont") }
        }
    }

    /// Brackets that balance around invalid JSON: the splitter passes it, the parser does not.
    @Test func anUnparsableReplyFailsTheConnectionInsteadOfLeavingItsCommandWaiting() async throws {
        try await StubQMPServer.with(script: ["stop": .hold]) { stub, qmp in
            let stopped = Task { try await qmp.execute("stop") }
            let held = try await stub.held(atLeast: 1)
            let id = held[0]["id"]?.description ?? "null"
            stub.send(#"{"return": {}, "id": \#(id),}"#)
            await #expect(throws: QMPError.protocolViolation("QEMU sent malformed JSON")) { try await stopped.value }
        }
    }
}
