#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Endpoints

/// A target's CAN device joins its bus while the guest already runs: what
/// the guest sends before its link has joined waits in the UART's FIFO and
/// reaches the other members once it has. Real sockets, a real FIFO.
@Suite struct CANBusLinkEarlyFrameTests {
    @Test func framesSentBeforeTheJoinReachTheOtherMember() async throws {
        let bus = try await CANTestBus.start("early")
        defer { try? FileManager.default.removeItem(atPath: bus.dir) }
        let (dir, loop, hub) = (bus.dir, bus.loop, bus.hub)

        // B is on the bus first: its UART is a pair of pipes.
        var bIn: [Int32] = [0, 0], bOut: [Int32] = [0, 0]
        #expect(pipe(&bIn) == 0 && pipe(&bOut) == 0)
        let b = try await bus.join("b/can0")
        try await b.attach(input: bIn[0], output: bOut[1])

        // A's guest sends two frames into its UART's FIFO before A's link exists.
        let fifo = dir + "/can0.out"
        #expect(mkfifo(fifo, 0o600) == 0)
        let aRead = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        let guest = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        #expect(aRead >= 0 && guest >= 0)
        let early = Array("t1001AA\rt1002BBCC\r".utf8)
        #expect(write(guest, early, early.count) == early.count)
        var aIn: [Int32] = [0, 0]
        #expect(pipe(&aIn) == 0)

        // Then A joins, and only then takes the FIFO over.
        let a = try await bus.join("a/can0")
        try await a.attach(input: aRead, output: aIn[1])
        let atB = readText(bOut[0], until: "t1002BBCC\r")
        #expect(atB == "t1001AA\rt1002BBCC\r", "B got: \(atB.debugDescription)")

        // And a frame sent after the join follows them.
        let later = Array("t1001DD\r".utf8)
        #expect(write(guest, later, later.count) == later.count)
        let after = readText(bOut[0], until: "t1001DD\r")
        let counters = try await loop.submit { hub.counters() }.get()
        #expect(after == "t1001DD\r", "counters: \(counters)")

        close(guest)
        await a.leave()
        await b.leave()
        for fd in [bIn[1], bOut[0], aIn[0]] { close(fd) }
        try await bus.stop()
    }
}
