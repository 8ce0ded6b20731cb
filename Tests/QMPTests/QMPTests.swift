import Foundation
import NIOCore
import NIOPosix
import Sandbox
import Testing
@testable import QMP

@Suite struct JSONStreamSplitterTests {
    @Test func splitsObjectsAcrossChunks() throws {
        var s = JSONStreamSplitter()
        #expect(try s.append(Array("{\"a\": \"}{\\\"\"}\r\n{\"b\"".utf8)).map { String(decoding: $0, as: UTF8.self) } == ["{\"a\": \"}{\\\"\"}"])
        #expect(try s.append(Array(": [1, {\"c\": 2}]}".utf8)).map { String(decoding: $0, as: UTF8.self) } == ["{\"b\": [1, {\"c\": 2}]}"])
    }

    @Test func garbageIsRefused() {
        var s = JSONStreamSplitter()
        #expect(throws: JSONStreamSplitter.Failure.unbalanced) { try s.append(Array("hello".utf8)) }
        #expect(throws: JSONStreamSplitter.Failure.unbalanced) { try s.append(Array("}".utf8)) }
        var small = JSONStreamSplitter(maxMessageBytes: 16)
        #expect(throws: JSONStreamSplitter.Failure.tooLarge) { try small.append(Array("{\"a\": \"0123456789012345678\"".utf8)) }
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

func connect(_ fd: Int32, _ group: any EventLoopGroup) async throws -> QMPClient {
    let (handler, core, events) = QMPClient.makeHandler()
    let channel = try await ClientBootstrap(group: group)
        .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler) } }
        .withConnectedSocket(fd).get()
    return try await QMPClient.handshake(on: channel, core: core, events: events)
}

@Suite(.serialized) struct QMPClientTests {
    @Test func commandsRepliesAndEvents() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (child, fd) = try await startQEMU()
        let qmp = try await connect(fd, group)
        #expect(qmp.greeting?["QMP"] != nil)
        // More than eight at once: the client queues past its in-flight limit.
        let statuses = try await withThrowingTaskGroup(of: String.self) { g in
            for _ in 0..<20 { g.addTask { try await qmp.execute("query-status")["status"]?.stringValue ?? "" } }
            return try await g.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses == Array(repeating: "prelaunch", count: 20))
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
        try await group.shutdownGracefully()
    }

    @Test func qemuKilledMidCommandFailsPendingCommands() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (child, fd) = try await startQEMU()
        let qmp = try await connect(fd, group)
        _ = try await qmp.execute("stop")
        child.signal(SIGKILL)
        _ = await child.waitForExit()
        await #expect(throws: QMPError.self) { try await qmp.execute("query-status") }
        try await group.shutdownGracefully()
    }
}
