import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import Endpoints

/// The hub with its UART and its clients on testing channels of one loop:
/// every byte's way is followed without FIFOs, sockets or QEMU, and the batch
/// window runs on the loop's clock, stepped by hand. (The async testing
/// channel, not `EmbeddedChannel`: `reset()` and the counts await the loop,
/// which an `EmbeddedEventLoop` only runs when the test's own thread asks.)
@Suite(.timeLimit(.minutes(1))) struct SerialHubTests {
    let loop: NIOAsyncTestingEventLoop
    let heard: Heard
    let uartReads: ReadCounter
    let hub: SerialHub
    /// vtarget's end of the UART: inbound is what the guest sends, outbound what it receives.
    let uart: NIOAsyncTestingChannel

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

    init() async throws {
        let loop = NIOAsyncTestingEventLoop(), heard = Heard(), reads = ReadCounter()
        let hub = SerialHub(name: "ttyS0", loop: loop,
                            onOutput: { bytes in heard.output.withLock { $0 += bytes } },
                            onClosed: { heard.uartClosed.withLock { $0 = true } },
                            report: { line in heard.reports.withLock { $0.append(line) } })
        let uart = try await NIOAsyncTestingChannel.connected([reads, SerialHub.UARTSide(hub: hub)], on: loop)
        try await loop.submit { hub.qemu = uart }.get()
        // The loop's clock starts at zero; a real one is far past any batch window.
        await loop.advanceTime(by: .seconds(1))
        (self.loop, self.heard, self.uartReads, self.hub, self.uart) = (loop, heard, reads, hub, uart)
    }

    /// A client of the plain socket, or of the force socket.
    func client(force: Bool = false) async throws -> NIOAsyncTestingChannel {
        try await NIOAsyncTestingChannel.connected([SerialHub.ClientSide(hub: hub, force: force)], on: loop)
    }

    /// One read burst of guest output.
    func guest(_ text: String) async throws {
        try await uart.writeInbound(ByteBuffer(string: text))
    }

    func type(_ text: String, into client: NIOAsyncTestingChannel) async throws {
        try await client.writeInbound(ByteBuffer(string: text))
    }

    /// The writes `channel` got since last asked, one string per write.
    func writes(_ channel: NIOAsyncTestingChannel) async throws -> [String] {
        var out: [String] = []
        while let b = try await channel.readOutbound(as: ByteBuffer.self) { out.append(String(buffer: b)) }
        return out
    }

    func text(_ channel: NIOAsyncTestingChannel) async throws -> String {
        try await writes(channel).joined()
    }

    @Test func everyClientReadsAllOutputInOrder() async throws {
        let a = try await client(), b = try await client(), c = try await client()
        for line in ["boot\r\n", "kernel\r\n", "login: "] { try await guest(line) }
        await loop.advanceTime(by: SerialHub.batchWindow(clients: 3))
        for channel in [a, b, c] { #expect(try await text(channel) == "boot\r\nkernel\r\nlogin: ") }
        #expect(heard.text == "boot\r\nkernel\r\nlogin: ")
        #expect(await hub.recentOutput() == Array("boot\r\nkernel\r\nlogin: ".utf8))
        #expect(await hub.clientCount() == 3)
    }

    @Test func theFirstWriterHoldsTheUARTAndOthersAreToldOnce() async throws {
        let a = try await client(), b = try await client()
        try await type("ls\r", into: a)
        try await type("reboot\r", into: b)
        try await type("reboot\r", into: b)
        #expect(try await text(uart) == "ls\r")
        #expect(try await writes(b) == [Self.readOnlyNotice], "one notice, however often it tries")
        #expect(try await writes(a) == [])

        try await type("pwd\r", into: a)
        #expect(try await text(uart) == "pwd\r", "the holder keeps writing")
        // vtarget's own input goes in whoever holds the UART.
        hub.send(Array("\u{3}".utf8))
        #expect(try await text(uart) == "\u{3}")

        // The holder leaves: the next client to write holds it.
        try await a.close()
        try await type("whoami\r", into: b)
        #expect(try await text(uart) == "whoami\r")
        #expect(try await writes(b) == [])
    }

    @Test func aForceClientTakesWriteAccessOnConnecting() async throws {
        let a = try await client(), bystander = try await client()
        try await type("a1", into: a)
        let f = try await client(force: true)
        #expect(try await writes(a) == [Self.takenOverNotice], "taken over before the force client writes a byte")
        try await type("a2", into: a)
        try await type("f1", into: f)
        #expect(try await text(uart) == "a1f1")
        #expect(try await writes(a) == [], "already told it is read-only")
        #expect(try await writes(bystander) == [])

        // A second force client takes over from the first.
        let g = try await client(force: true)
        #expect(try await writes(f) == [Self.takenOverNotice])
        try await type("f2", into: f)
        try await type("g1", into: g)
        #expect(try await text(uart) == "g1")

        // The forced writer leaves: write access is free for whoever writes first.
        try await g.close()
        try await type("b1", into: bystander)
        #expect(try await text(uart) == "b1")
    }

    @Test func aLateJoinerGetsTheLast64KiBFirstThenLiveOutput() async throws {
        let early = try await client()
        #expect(try await writes(early) == [], "nothing to replay yet")
        let history = String((0..<(70 << 10)).map { Character(Unicode.Scalar(UInt8(ascii: "a") + UInt8($0 % 26))) })
        try await guest(history)
        let late = try await client()
        #expect(try await writes(late) == [String(history.suffix(64 << 10))], "the replay, in one write")
        try await guest("live")
        await loop.advanceTime(by: SerialHub.batchWindow(clients: 2))
        #expect(try await text(late) == "live")
        #expect(try await text(early) == history + "live")
        #expect(await hub.recentOutput().count == 64 << 10)
    }

    @Test func batchWindowGrowsWithReadersUpToOneMillisecond() {
        #expect(SerialHub.batchWindow(clients: 0) == .zero)
        #expect(SerialHub.batchWindow(clients: 1) == .zero)
        #expect(SerialHub.batchWindow(clients: 2) == .microseconds(64))
        #expect(SerialHub.batchWindow(clients: 10) == .microseconds(576))
        #expect(SerialHub.batchWindow(clients: 500) == .milliseconds(1))
    }

    @Test func withSeveralReadersAFastStreamGoesInBatchesWhileTheUARTWaits() async throws {
        let a = try await client(), b = try await client()
        try await loop.submit { uart.read() }.get()
        #expect(uartReads.count == 1, "nothing waiting: reads pass")

        try await guest("1")
        #expect(try await writes(a) == ["1"], "output after a pause goes at once")
        try await guest("2")
        #expect(try await writes(a) == [], "output within the window of the last waits for its batch")
        try await loop.submit { uart.read() }.get()
        #expect(uartReads.count == 1, "and the UART is not read meanwhile")
        try await guest("3")
        await loop.advanceTime(by: SerialHub.batchWindow(clients: 2) - .nanoseconds(1))
        #expect(try await writes(a) == [])
        await loop.advanceTime(by: .nanoseconds(1))
        #expect(try await writes(a) == ["23"], "one write for the batch")
        #expect(try await writes(b) == ["1", "23"])
        #expect(uartReads.count == 2, "the held read goes with the batch")

        // A lone reader never waits.
        try await b.close()
        try await guest("4")
        try await guest("5")
        #expect(try await writes(a) == ["4", "5"])
        #expect(heard.text == "12345")
    }

    @Test func aClientThatStopsReadingIsDroppedAndReported() async throws {
        let reader = try await client(), stalled = try await client()
        try await type("x", into: stalled)
        stalled.isWritable = false  // as when 1 MiB sits unread in its socket
        try await guest("output")
        #expect(!stalled.isActive)
        #expect(heard.reports.withLock { $0 } == ["ttyS0: dropped a client that stopped reading (1024 KiB queued)"])
        #expect(await hub.clientCount() == 1)
        #expect(try await text(reader) == "output")
        try await type("y", into: reader)
        #expect(try await text(uart) == "xy", "the dropped client's hold on the UART went with it")
    }

    @Test func aClientLeavingEndsOnlyItsOwnCopy() async throws {
        let a = try await client(), b = try await client()
        try await guest("one ")
        try await b.close()
        #expect(await hub.clientCount() == 1)
        try await guest("two")
        #expect(try await text(a) == "one two")
        #expect(try await text(b) == "one ")
    }

    @Test func theUARTClosingHandsOnWhatWaitedThenEndsEveryClient() async throws {
        let a = try await client(), b = try await client()
        try await guest("first ")
        try await guest("last words")  // waits for its batch
        try await uart.close()
        for channel in [a, b] {
            #expect(try await text(channel) == "first last words")
            #expect(!channel.isActive)
        }
        #expect(heard.uartClosed.withLock { $0 })
        #expect(heard.text == "first last words")
        #expect(await hub.clientCount() == 0)
    }

    @Test func resetLeavesNothingOfThePreviousSession() async throws {
        let a = try await client(), b = try await client()
        try await type("secret\r", into: a)
        try await guest("password: ")
        try await guest("hunter2")  // waits for its batch
        await hub.reset()
        #expect(!a.isActive && !b.isActive)
        #expect(await hub.clientCount() == 0)
        #expect(await hub.recentOutput() == [])
        await loop.advanceTime(by: .milliseconds(1))  // the batch's time comes, with nothing left in it
        #expect(try await text(a) == "password: ")

        let next = try await client()
        #expect(try await writes(next) == [], "no replay of the previous session")
        try await guest("login: ")
        #expect(try await text(next) == "login: ")
        try await type("root\r", into: next)
        #expect(try await text(uart) == "secret\rroot\r", "the previous writer's hold went with it")
        // Output still waiting at the reset reaches no one: not the next
        // claimer, and neither `onOutput` nor the log.
        #expect(heard.text == "password: login: ")
    }
}
