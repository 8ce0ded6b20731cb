import NIOCore
import NIOEmbedded
import Testing
@testable import Endpoints

/// Input to a recorded UART: one byte per gap, in the order it came, from
/// clients and from vtarget alike, on the loop's clock stepped by hand.
@Suite(.timeLimit(.minutes(1))) struct PacedInputTests {
    let loop = EmbeddedEventLoop()
    let hub: SerialHub
    let uart: EmbeddedChannel
    static let gap = TimeAmount.milliseconds(150)

    init() throws {
        hub = SerialHub(name: "uart0", loop: loop, onOutput: { _ in })
        uart = try EmbeddedChannel.connected([SerialHub.UARTSide(hub: hub)], on: loop)
        hub.qemu = uart
        loop.advanceTime(by: .seconds(1))
        hub.paced = PacedInput(loop: loop, gap: Self.gap) { [hub] in hub.qemu?.writeAndFlush(bytes: $0) }
    }

    func client() throws -> EmbeddedChannel {
        try EmbeddedChannel.connected([SerialHub.ClientSide(hub: hub, force: false)], on: loop)
    }

    /// What reached the UART since the last look, one string per write.
    func writes() throws -> [String] { try uart.writes() }

    @Test func aBurstGoesOneBytePerGap() throws {
        let c = try client()
        try c.writeInbound(ByteBuffer(string: "ping\r"))
        #expect(try writes() == ["p"], "the first byte at once")
        loop.advanceTime(by: Self.gap - .milliseconds(1))
        #expect(try writes() == [], "not before the gap")
        loop.advanceTime(by: .milliseconds(1))
        #expect(try writes() == ["i"])
        loop.advanceTime(by: Self.gap * 3)
        #expect(try writes() == ["n", "g", "\r"], "one write per byte, none merged")
        #expect(hub.paced?.queued == 0)

        // After a pause as long as the gap, the next byte goes at once.
        loop.advanceTime(by: Self.gap)
        try c.writeInbound(ByteBuffer(string: "x"))
        #expect(try writes() == ["x"])
    }

    @Test func vtargetsOwnInputQueuesBehindTheClients() throws {
        let c = try client()
        try c.writeInbound(ByteBuffer(string: "ab"))
        hub.send(Array("cd".utf8))
        loop.run()
        loop.advanceTime(by: Self.gap * 3)
        #expect(try writes().joined() == "abcd")
    }

    @Test func drainedSucceedsAGapAfterTheLastByteAndResetDropsTheRest() throws {
        let c = try client()
        try c.writeInbound(ByteBuffer(string: "abc"))
        let drained = hub.paced!.drained()
        var done = false
        drained.whenSuccess { done = true }
        loop.advanceTime(by: Self.gap)
        #expect(!done, "one byte still queued")
        loop.advanceTime(by: Self.gap)
        #expect(!done, "the last byte still on its way to the guest")
        loop.advanceTime(by: Self.gap)
        #expect(done)
        #expect(try writes().joined() == "abc")

        // A new session (a pool member handed back) does not type the previous one's input.
        loop.advanceTime(by: Self.gap)
        try c.writeInbound(ByteBuffer(string: "rm -rf"))
        _ = hub.endSession()
        loop.advanceTime(by: Self.gap * 10)
        #expect(try writes() == ["r"], "only what went before the reset")
        #expect(hub.paced?.queued == 0)
    }
}
