import Foundation
import NIOCore
import NIOPosix
import Sandbox
import Synchronization
import Testing
@testable import QMP

@Suite struct JSONStreamSplitterTests {
    @Test func splitsObjectsAcrossChunks() {
        var s = JSONStreamSplitter()
        #expect(s.append(Array("{\"a\": \"}{\\\"\"}\r\n{\"b\"".utf8)).messages.map { String(decoding: $0, as: UTF8.self) } == ["{\"a\": \"}{\\\"\"}"])
        #expect(s.append(Array(": [1, {\"c\": 2}]}".utf8)).messages.map { String(decoding: $0, as: UTF8.self) } == ["{\"b\": [1, {\"c\": 2}]}"])
    }

    @Test func garbageIsRefused() {
        var s = JSONStreamSplitter()
        #expect(s.append(Array("hello".utf8)).failure == .unbalanced)
        #expect(s.append(Array("}".utf8)).failure == .unbalanced)
        var small = JSONStreamSplitter(maxMessageBytes: 16)
        #expect(small.append(Array("{\"a\": \"0123456789012345678\"".utf8)).failure == .tooLarge)
    }

    /// A complete text before garbage in the same chunk is kept; after the
    /// garbage the splitter starts afresh.
    @Test func messagesBeforeGarbageAreKept() {
        var s = JSONStreamSplitter()
        let split = s.append(Array("{\"execute\": \"stop\"} oops {\"x\": 1}".utf8))
        #expect(split.messages.map { String(decoding: $0, as: UTF8.self) } == ["{\"execute\": \"stop\"}"])
        #expect(split.failure == .unbalanced)
        #expect(s.append(Array("{\"execute\": \"cont\"}".utf8)).messages.count == 1)
    }
}

/// Real QEMU, paused, with its monitor on a socket pair.
func startQEMU() async throws -> (ChildProcess, Int32) {
    let (ours, theirs) = try makeSocketPair()
    defer { close(theirs) }
    let child = try await ChildProcess.spawn(SpawnRequest(
        executable: "/usr/bin/qemu-system-arm",
        arguments: ["-machine", "lm3s6965evb", "-nodefaults", "-display", "none", "-S",
                    "-chardev", "socket,id=vt-qmp,fd=3", "-mon", "chardev=vt-qmp,mode=control"],
        environment: ["PATH=/usr/bin:/bin"], fds: [-1, -1, 2, theirs]))
    return (child, ours)
}

func connect(_ fd: Int32, _ group: any EventLoopGroup, counting sent: SentCommands? = nil) async throws -> QMPClient {
    let (handler, core, events) = QMPClient.makeHandler()
    let channel = try await ClientBootstrap(group: group)
        .channelInitializer { ch in
            ch.eventLoop.makeCompletedFuture {
                if let sent { try ch.pipeline.syncOperations.addHandler(sent) }
                try ch.pipeline.syncOperations.addHandler(handler)
            }
        }
        .withConnectedSocket(fd).get()
    return try await QMPClient.handshake(on: channel, core: core, events: events)
}

/// A paused QEMU with vtarget's QMP client on its monitor, for the length of `body`.
func withQEMU(counting sent: SentCommands? = nil, _ body: (QMPClient, ChildProcess) async throws -> Void) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let (child, fd) = try await startQEMU()
    let qmp = try await connect(fd, group, counting: sent)
    do { try await body(qmp, child) } catch {
        child.signal(SIGKILL)
        _ = await child.waitForExit()
        try await group.shutdownGracefully()
        throw error
    }
    try await group.shutdownGracefully()
}

/// What the client writes to QEMU, command by command.
final class SentCommands: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = ByteBuffer
    private let names = Mutex<[String]>([])
    var all: [String] { names.withLock { $0 } }
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = Array(unwrapOutboundIn(data).readableBytesView)
        var splitter = JSONStreamSplitter()
        let commands = splitter.append(bytes).messages.compactMap { try? JSONValue.parse($0)["execute"]?.stringValue }
        names.withLock { $0 += commands }
        context.write(data, promise: promise)
    }
}

@Suite(.serialized) struct QMPClientTests {
    @Test func commandsRepliesAndEvents() async throws {
        try await withQEMU { qmp, child in
            #expect(qmp.greeting?["QMP"] != nil)
            // More than eight at once (a command QEMU answers every time): the
            // client queues past its in-flight limit.
            let replies = try await withThrowingTaskGroup(of: JSONValue.self) { g in
                for _ in 0..<20 { g.addTask { try await qmp.execute("query-iothreads") } }
                return try await g.reduce(into: []) { $0.append($1) }
            }
            #expect(replies == Array(repeating: .array([]), count: 20))
            await #expect(throws: QMPError.command(errorClass: "CommandNotFound", description: "The command no-such-command has not been found")) {
                try await qmp.execute("no-such-command")
            }
            #expect(try await qmp.hmp("info status").contains("paused"))
            // No firmware is loaded, so the guest stays paused: a running Cortex-M
            // would lock up. A reset still produces an event.
            _ = try await qmp.execute("system_reset")
            var iterator = qmp.events.makeAsyncIterator()
            let event = await iterator.next()
            #expect(event?["event"]?.stringValue == "RESET")
            // QEMU may close the monitor before its reply to quit arrives.
            _ = try? await qmp.execute("quit")
            #expect(await child.waitForExit() == .exited(0))
        }
    }

    @Test func qemuKilledMidCommandFailsPendingCommands() async throws {
        try await withQEMU { qmp, child in
            _ = try await qmp.execute("stop")
            child.signal(SIGKILL)
            _ = await child.waitForExit()
            await #expect(throws: QMPError.self) { try await qmp.execute("query-status") }
        }
    }

    /// Read-only queries are answered from QEMU's last reply until an event
    /// or any other command; identical ones asked meanwhile share one trip.
    @Test func queriesAreAskedOnceUntilSomethingChanges() async throws {
        let sent = SentCommands()
        try await withQEMU(counting: sent) { qmp, child in
            func status() async throws -> String { try await qmp.execute("query-status")["status"]?.stringValue ?? "" }
            #expect(sent.all == ["qmp_capabilities"])

            let statuses = try await withThrowingTaskGroup(of: String.self) { g in
                for _ in 0..<20 { g.addTask { try await status() } }
                return try await g.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: "prelaunch", count: 20))
            #expect(try await status() == "prelaunch")
            #expect(sent.all == ["qmp_capabilities", "query-status"], "20 concurrent and 1 later query cost QEMU one")

            // Arguments are part of the question.
            _ = try await qmp.execute("query-commands")
            _ = try await qmp.execute("query-commands")
            #expect(sent.all.filter { $0 == "query-commands" }.count == 1)

            // Any other command may change the answer, even a failing or an HMP one.
            _ = try? await qmp.execute("no-such-command")
            #expect(try await status() == "prelaunch")
            _ = try await qmp.hmp("info version")
            #expect(try await status() == "prelaunch")
            #expect(sent.all.suffix(4) == ["no-such-command", "query-status", "human-monitor-command", "query-status"])

            // So does an event: a reset, then the next query goes to QEMU.
            var iterator = qmp.events.makeAsyncIterator()
            _ = try await qmp.execute("system_reset")
            #expect(await iterator.next()?["event"]?.stringValue == "RESET")
            #expect(try await status() == "prelaunch")
            #expect(sent.all.suffix(2) == ["system_reset", "query-status"])

            // A command sent while a query is on its way: the query asked after it is not answered from before it.
            // (`send` routes before it returns, so the three are asked in this order; three `async let`s would race.)
            final class Left: Sendable { let count = Mutex(3) }
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                let left = Left()
                let one: QMPConnectionCore.Reply = { _ in if left.count.withLock({ $0 -= 1; return $0 }) == 0 { done.resume() } }
                qmp.send("query-status", reply: one)
                qmp.send("stop", reply: one)
                qmp.send("query-status", reply: one)
            }
            #expect(sent.all.suffix(3) == ["query-status", "stop", "query-status"])

            _ = try? await qmp.execute("quit")
            #expect(await child.waitForExit() == .exited(0))
        }
    }

    @Test func ridersFailWithTheQueryTheyRodeWhenQEMUDies() async throws {
        try await withQEMU { qmp, child in
            _ = try await qmp.execute("stop")
            // Frozen, QEMU answers nothing: the queries wait, then its death fails them all.
            child.signal(SIGSTOP)
            let waiting = Task {
                await withTaskGroup(of: Bool.self) { g in
                    for _ in 0..<5 { g.addTask { (try? await qmp.execute("query-status")) == nil } }
                    return await g.reduce(into: []) { $0.append($1) }
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            child.signal(SIGKILL)
            _ = await child.waitForExit()
            #expect(await waiting.value == Array(repeating: true, count: 5))
        }
    }
}
