#if canImport(Glibc)
import Glibc
#endif
import CANProtocol
import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing
@testable import Endpoints

/// What a recording's traces hear: serial input when it is written to the
/// UART (after pacing), on the loop's clock stepped by hand.
@Suite(.timeLimit(.minutes(1))) struct SerialInputObserverTests {
    let loop = EmbeddedEventLoop()
    let hub: SerialHub
    let uart: EmbeddedChannel
    let box = Heard()
    var heard: [String] { box.items.withLock { $0 } }
    static let gap = TimeAmount.milliseconds(150)

    init() throws {
        hub = SerialHub(name: "uart0", loop: loop, onOutput: { _ in })
        uart = try EmbeddedChannel.connected([SerialHub.UARTSide(hub: hub)], on: loop)
        hub.qemu = uart
        loop.advanceTime(by: .seconds(1))
        hub.onInput = { [box] b in box.items.withLock { $0.append(String(decoding: b, as: UTF8.self)) } }
    }

    func client() throws -> EmbeddedChannel {
        try EmbeddedChannel.connected([SerialHub.ClientSide(hub: hub, force: false)], on: loop)
    }

    /// Unpaced, a client's write and vtarget's `send` are heard as written, whole.
    @Test func unpacedInputIsHeardAsWritten() throws {
        let c = try client()
        try c.writeInbound(ByteBuffer(string: "ping\r"))
        hub.send(Array("xy".utf8))
        loop.run()
        #expect(try uart.writes() == ["ping\r", "xy"])
        #expect(heard == ["ping\r", "xy"])
    }

    /// Paced, each byte is heard when it goes, not when it was typed.
    @Test func pacedInputIsHeardWhenItGoes() throws {
        hub.paced = PacedInput(loop: loop, gap: Self.gap) { [hub] in hub.writeToUART($0) }
        let c = try client()
        try c.writeInbound(ByteBuffer(string: "abc"))
        #expect(heard == ["a"])
        loop.advanceTime(by: Self.gap - .milliseconds(1))
        #expect(heard == ["a"], "not before it went")
        loop.advanceTime(by: .milliseconds(1))
        #expect(heard == ["a", "b"])
        loop.advanceTime(by: Self.gap)
        #expect(heard == ["a", "b", "c"])
        #expect(try uart.writes() == ["a", "b", "c"])
    }

    /// Without a UART nothing is written, so nothing is heard.
    @Test func nothingIsHeardWithoutAUART() throws {
        hub.qemu = nil
        hub.send(Array("lost".utf8))
        loop.run()
        #expect(heard.isEmpty)
    }
}

final class Heard: Sendable {
    let items = Mutex<[String]>([])
}

final class HeardFrames: Sendable {
    let items = Mutex<[(String, CANBusLink.Direction, Double)]>([])
}

/// A CAN device's frames, both ways, heard by its link's observer; frames
/// into a recorded board's UART paced. Real sockets, a real bus hub, pipes
/// for the UARTs.
/// No time limit, unlike the embedded-loop suites: these await real sockets
/// and sleeps, and in `make test`'s parallel phase a 2-core machine's two
/// cooperative threads may be held by blocking integration tests for
/// minutes (CI: 273 s) before these resume. Their own waits are bounded.
@Suite struct CANFrameObserverTests {
    @Test func framesBothWaysAreHeardAndBusFramesArePaced() async throws {
        let bus = try await CANTestBus.start("obs")
        defer { try? FileManager.default.removeItem(atPath: bus.dir) }
        let loop = bus.loop

        // A: the recorded board, paced and observed.
        var aIn: [Int32] = [0, 0], aOut: [Int32] = [0, 0]
        #expect(pipe(&aIn) == 0 && pipe(&aOut) == 0)
        let a = try await bus.join("a/can0")
        let heard = HeardFrames()
        let t0 = Date()
        try await a.paceInput(gap: .milliseconds(20))
        try await a.observeFrames { f, d in heard.items.withLock { $0.append((CANText.cansend(f), d, Date().timeIntervalSince(t0))) } }
        try await a.attach(input: aIn[0], output: aOut[1])
        // B: another member, unpaced, unobserved.
        var bIn: [Int32] = [0, 0], bOut: [Int32] = [0, 0]
        #expect(pipe(&bIn) == 0 && pipe(&bOut) == 0)
        let b = try await bus.join("b/can0")
        try await b.attach(input: bIn[0], output: bOut[1])

        // B's guest sends two frames: they reach A's UART, paced (18 bytes at 20 ms: at least 340 ms).
        let fromB = Array("t1231AA\rt7FF3C0FFEE\r".utf8)
        #expect(write(bIn[1], fromB, fromB.count) == fromB.count)
        let sentAt = Date()
        // Both frames at A's link, waiting for its UART; once drained, all their bytes are in the pipe.
        var queued = 0
        for _ in 0..<500 where queued < 2 {
            queued = try await loop.submit { a.framesQueued }.get()
            if queued < 2 { try await Task.sleep(for: .milliseconds(2)) }
        }
        // A test loop starved longer than the 340 ms of pacing (a loaded CI) finds
        // both frames already through: only fewer than two at once would be wrong.
        #expect(queued == 2 || Date().timeIntervalSince(sentAt) >= 0.3, "queued \(queued)")
        await a.inputDrained()
        #expect(Date().timeIntervalSince(sentAt) >= 0.3, "paced: one byte per 20 ms")
        let atA = readText(aOut[0], until: "t7FF3C0FFEE\r", seconds: 0.5)
        #expect(atA == "t1231AA\rt7FF3C0FFEE\r", "A got: \(atA.debugDescription)")
        // A's guest answers: heard as sent once it went to the bus, and B gets it.
        let fromA = Array("T000001242BEEF\r".utf8)
        #expect(write(aIn[1], fromA, fromA.count) == fromA.count)
        let atB = readText(bOut[0], until: "T000001242BEEF\r")
        #expect(atB.hasSuffix("T000001242BEEF\r"), "B got: \(atB.debugDescription)")

        let frames = heard.items.withLock { $0 }
        #expect(frames.map(\.0) == ["123#AA", "7FF#C0FFEE", "00000124#BEEF"], "\(frames)")
        #expect(frames.map(\.1) == [.received, .received, .sent])
        #expect(frames.map(\.2) == frames.map(\.2).sorted())
        // The first frame is heard when its last byte went (8 bytes: 7 gaps), not when it came.
        #expect(frames.first.map { $0.2 } ?? 0 >= 0.14, "\(frames)")

        await a.leave()
        await b.leave()
        for fd in [aIn[1], aOut[0], bIn[1], bOut[0]] { close(fd) }
        try await bus.stop()
    }

    /// A recorded board's UART takes frames slower than a bus may send
    /// them: past 64 waiting, they are dropped, and the link says so once.
    @Test func framesPastTheLimitAreDroppedWithANote() async throws {
        let bus = try await CANTestBus.start("full")
        defer { try? FileManager.default.removeItem(atPath: bus.dir) }
        let loop = bus.loop
        let notes = Heard()
        var aIn: [Int32] = [0, 0], aOut: [Int32] = [0, 0], bIn: [Int32] = [0, 0], bOut: [Int32] = [0, 0]
        #expect(pipe(&aIn) == 0 && pipe(&aOut) == 0 && pipe(&bIn) == 0 && pipe(&bOut) == 0)
        let a = try await bus.join("a/can0", onLost: { m in notes.items.withLock { $0.append(m) } })
        // An hour apart: however slowly a loaded machine runs this test, no
        // frame finishes reaching the UART, so exactly the limit stays waiting.
        try await a.paceInput(gap: .seconds(3600))
        try await a.attach(input: aIn[0], output: aOut[1])
        let b = try await bus.join("b/can0")
        try await b.attach(input: bIn[0], output: bOut[1])
        let burst = Array((0..<70).map { _ in "t1001AA\r" }.joined().utf8)
        #expect(write(bIn[1], burst, burst.count) == burst.count)
        var said: [String] = []
        for _ in 0..<1000 where said.isEmpty {
            said = notes.items.withLock { $0 }
            if said.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(said.first?.hasPrefix("a/can0: 1 frame(s) from the bus dropped: the recorded UART takes one byte per 3600000 ms") == true, "\(said)")
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await loop.submit { a.framesQueued }.get() == CANBusLink.pacedFrameLimit)
        #expect(notes.items.withLock { $0.count } == 1, "one note, not one per frame")

        await a.leave()
        await b.leave()
        for fd in [aIn[1], aOut[0], bIn[1], bOut[0]] { close(fd) }
        try await bus.stop()
    }
}
