import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import Endpoints

/// The hub with its UART and its clients on embedded channels of one loop:
/// every byte's way is followed without FIFOs, sockets or QEMU, and the batch
/// window runs on the loop's clock, stepped by hand. Synchronous on purpose:
/// a test that needs no thread of the shared pool between its steps is not
/// slowed by the integration tests that block them.
@Suite(.timeLimit(.minutes(1))) struct SerialHubTests {
    let loop = EmbeddedEventLoop()
    let heard = Heard()
    let uartReads = ReadCounter()
    let hub: SerialHub
    /// vtarget's end of the UART: inbound is what the guest sends, outbound what it receives.
    let uart: EmbeddedChannel

    /// What the hub hands on and tells vtarget's user, outside the clients.
    final class Heard: Sendable {
        let output = Mutex<[UInt8]>([])
        let reports = Mutex<[String]>([])
        let uartClosed = Mutex(false)
        var text: String { output.withLock { String(decoding: $0, as: UTF8.self) } }
    }

    /// Counts the reads that get past the hub to the UART, which the hub holds while a batch waits.
    final class ReadCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = ByteBuffer
        private let reads = Mutex(0)
        var count: Int { reads.withLock { $0 } }
        func read(context: ChannelHandlerContext) {
            reads.withLock { $0 += 1 }
            context.read()
        }
    }

    static let readOnlyNotice = "\r\nvtarget: ttyS0: read-only: another client is writing; connect to ttyS0.force.sock (vtarget console --force) to take over\r\n"
    static let takenOverNotice = "\r\nvtarget: ttyS0: write access was taken over by another client (--force); you are read-only now\r\n"

    init() throws {
        let heard = heard
        hub = SerialHub(name: "ttyS0", loop: loop,
                        onOutput: { bytes in heard.output.withLock { $0 += bytes } },
                        onClosed: { heard.uartClosed.withLock { $0 = true } },
                        report: { line in heard.reports.withLock { $0.append(line) } })
        uart = try EmbeddedChannel.connected([uartReads, SerialHub.UARTSide(hub: hub)], on: loop)
        hub.qemu = uart
        // The loop's clock starts at zero; a real one is far past any batch window.
        loop.advanceTime(by: .seconds(1))
    }

    /// A client of the plain socket, or of the force socket.
    func client(force: Bool = false) throws -> EmbeddedChannel {
        try EmbeddedChannel.connected([SerialHub.ClientSide(hub: hub, force: force)], on: loop)
    }

    /// One read burst of guest output.
    func guest(_ text: String) throws {
        try uart.writeInbound(ByteBuffer(string: text))
    }

    func type(_ text: String, into client: EmbeddedChannel) throws {
        try client.writeInbound(ByteBuffer(string: text))
    }

    func text(_ channel: EmbeddedChannel) throws -> String {
        try channel.writes().joined()
    }

    var recentOutput: String { String(decoding: hub.replay.contents, as: UTF8.self) }

    @Test func everyClientReadsAllOutputInOrder() throws {
        let a = try client(), b = try client(), c = try client()
        for line in ["boot\r\n", "kernel\r\n", "login: "] { try guest(line) }
        loop.advanceTime(by: SerialHub.batchWindow(clients: 3))
        for channel in [a, b, c] { #expect(try text(channel) == "boot\r\nkernel\r\nlogin: ") }
        #expect(heard.text == "boot\r\nkernel\r\nlogin: ")
        #expect(recentOutput == "boot\r\nkernel\r\nlogin: ")
        #expect(hub.clients.count == 3)
    }

    @Test func theFirstWriterHoldsTheUARTAndOthersAreToldOnce() throws {
        let a = try client(), b = try client()
        try type("ls\r", into: a)
        try type("reboot\r", into: b)
        try type("reboot\r", into: b)
        #expect(try text(uart) == "ls\r")
        #expect(try b.writes() == [Self.readOnlyNotice], "one notice, however often it tries")
        #expect(try a.writes() == [])

        try type("pwd\r", into: a)
        #expect(try text(uart) == "pwd\r", "the holder keeps writing")
        // vtarget's own input (`send`) goes in, whoever holds the UART.
        hub.send(Array("\u{3}".utf8))
        loop.run()
        #expect(try text(uart) == "\u{3}")

        // The holder leaves: the next client to write holds it.
        try a.close().wait()
        try type("whoami\r", into: b)
        #expect(try text(uart) == "whoami\r")
        #expect(try b.writes() == [])
    }

    @Test func aForceClientTakesWriteAccessOnConnecting() throws {
        let a = try client(), bystander = try client()
        try type("a1", into: a)
        let f = try client(force: true)
        #expect(try a.writes() == [Self.takenOverNotice], "taken over before the force client writes a byte")
        try type("a2", into: a)
        try type("f1", into: f)
        #expect(try text(uart) == "a1f1")
        #expect(try a.writes() == [], "already told it is read-only")
        #expect(try bystander.writes() == [])

        // A second force client takes over from the first.
        let g = try client(force: true)
        #expect(try f.writes() == [Self.takenOverNotice])
        try type("f2", into: f)
        try type("g1", into: g)
        #expect(try text(uart) == "g1")

        // The forced writer leaves: write access is free for whoever writes first.
        try g.close().wait()
        try type("b1", into: bystander)
        #expect(try text(uart) == "b1")
    }

    @Test func aLateJoinerGetsTheLast64KiBFirstThenLiveOutput() throws {
        let early = try client()
        #expect(try early.writes() == [], "nothing to replay yet")
        let history = String((0..<(70 << 10)).map { Character(Unicode.Scalar(UInt8(ascii: "a") + UInt8($0 % 26))) })
        try guest(history)
        let late = try client()
        #expect(try late.writes() == [String(history.suffix(64 << 10))], "the replay, in one write")
        try guest("live")
        loop.advanceTime(by: SerialHub.batchWindow(clients: 2))
        #expect(try text(late) == "live")
        #expect(try text(early) == history + "live")
        #expect(recentOutput.count == 64 << 10)
    }

    @Test func batchWindowGrowsWithReadersUpToOneMillisecond() {
        #expect(SerialHub.batchWindow(clients: 0) == .zero)
        #expect(SerialHub.batchWindow(clients: 1) == .zero)
        #expect(SerialHub.batchWindow(clients: 2) == .microseconds(64))
        #expect(SerialHub.batchWindow(clients: 10) == .microseconds(576))
        #expect(SerialHub.batchWindow(clients: 500) == .milliseconds(1))
    }

    @Test func withSeveralReadersAFastStreamGoesInBatchesWhileTheUARTWaits() throws {
        let a = try client(), b = try client()
        uart.read()
        #expect(uartReads.count == 1, "nothing waiting: reads pass")

        try guest("1")
        #expect(try a.writes() == ["1"], "output after a pause goes at once")
        try guest("2")
        #expect(try a.writes() == [], "output within the window of the last waits for its batch")
        uart.read()
        #expect(uartReads.count == 1, "and the UART is not read meanwhile")
        try guest("3")
        loop.advanceTime(by: SerialHub.batchWindow(clients: 2) - .nanoseconds(1))
        #expect(try a.writes() == [])
        loop.advanceTime(by: .nanoseconds(1))
        #expect(try a.writes() == ["23"], "one write for the batch")
        #expect(try b.writes() == ["1", "23"])
        #expect(uartReads.count == 2, "the held read goes with the batch")

        // A lone reader never waits.
        try b.close().wait()
        try guest("4")
        try guest("5")
        #expect(try a.writes() == ["4", "5"])
        #expect(heard.text == "12345")
    }

    @Test func aClientThatStopsReadingIsDroppedAndReported() throws {
        let reader = try client(), stalled = try client()
        try type("x", into: stalled)
        stalled.isWritable = false  // as when 1 MiB sits unread in its socket
        try guest("output")
        #expect(!stalled.isActive)
        #expect(heard.reports.withLock { $0 } == ["ttyS0: dropped a client that stopped reading (1024 KiB queued)"])
        #expect(hub.clients.count == 1)
        #expect(try text(reader) == "output")
        try type("y", into: reader)
        #expect(try text(uart) == "xy", "the dropped client's hold on the UART went with it")
    }

    @Test func aClientLeavingEndsOnlyItsOwnCopy() throws {
        let a = try client(), b = try client()
        try guest("one ")
        try b.close().wait()
        #expect(hub.clients.count == 1)
        try guest("two")
        #expect(try text(a) == "one two")
        #expect(try text(b) == "one ")
    }

    @Test func theUARTClosingHandsOnWhatWaitedThenEndsEveryClient() throws {
        let a = try client(), b = try client()
        try guest("first ")
        try guest("last words")  // waits for its batch
        try uart.close().wait()
        for channel in [a, b] {
            #expect(try text(channel) == "first last words")
            #expect(!channel.isActive)
        }
        #expect(heard.uartClosed.withLock { $0 })
        #expect(heard.text == "first last words")
        #expect(hub.clients.count == 0)
    }

    @Test func resetLeavesNothingOfThePreviousSession() throws {
        let a = try client(), b = try client()
        try type("secret\r", into: a)
        try guest("password: ")
        try guest("hunter2")  // waits for its batch
        for c in hub.endSession() { c.close(promise: nil) }  // what reset() does, on the loop
        #expect(!a.isActive && !b.isActive)
        #expect(hub.clients.count == 0)
        #expect(recentOutput.isEmpty)
        loop.advanceTime(by: .milliseconds(1))  // the batch's time comes, with nothing left in it
        #expect(try text(a) == "password: ")

        let next = try client()
        #expect(try next.writes() == [], "no replay of the previous session")
        try guest("login: ")
        #expect(try text(next) == "login: ")
        try type("root\r", into: next)
        #expect(try text(uart) == "secret\rroot\r", "the previous writer's hold went with it")
        // Output still waiting at the reset reaches no one: not the next
        // claimer, and neither `onOutput` nor the log.
        #expect(heard.text == "password: login: ")
    }
}
