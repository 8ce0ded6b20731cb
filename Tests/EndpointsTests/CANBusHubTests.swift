import CANProtocol
import NIOCore
import NIOEmbedded
import Testing
@testable import Endpoints

/// The bus hub with targets joined the way a `CANBusLink` joins (socketcand,
/// `< vtarget-member >`), on embedded channels. Frames are written and read
/// here in SLCAN, as the targets' UARTs carry them.
@Suite struct CANBusHubTests {
    func target(_ hub: CANBusHub, _ name: String) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: CANBusHub.SocketcandSession(hub: hub), loop: hub.loop as! EmbeddedEventLoop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "< open \(hub.name) >< vtarget-member \(name) >< rawmode >"))
        #expect(try raw(channel) == "< hi >< ok >< ok >")
        return channel
    }

    func raw(_ channel: EmbeddedChannel) throws -> String {
        var out = ""
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += String(buffer: b) }
        return out
    }

    /// The frames a target's UART would get, in SLCAN.
    func sent(_ channel: EmbeddedChannel) throws -> String {
        var splitter = Socketcand.MessageSplitter()
        return splitter.append(Array(try raw(channel).utf8)).compactMap(Socketcand.parseFrame)
            .map { String(decoding: SLCAN.encode($0), as: UTF8.self) }.joined()
    }

    /// What a target's UART sends, as its link forwards it: frames, and a marker per malformed line.
    func fromUART(_ channel: EmbeddedChannel, _ slcan: String) throws {
        var splitter = SLCAN.LineSplitter()
        for line in splitter.append(Array(slcan.utf8)) {
            let message = (try? SLCAN.decode(line)).map(Socketcand.sendMessage) ?? Array("< vtarget-malformed >".utf8)
            var b = channel.allocator.buffer(capacity: message.count)
            b.writeBytes(message)
            try channel.writeInbound(b)
        }
    }

    @Test func theLastTargetLeavingTakesTheBusDownBeforeItHearsOK() throws {
        let loop = EmbeddedEventLoop()
        let hub = CANBusHub(name: "test", loop: loop, logPath: nil)
        nonisolated(unsafe) var downAt: String?
        let a = try target(hub, "a/can0"), b = try target(hub, "b/can0")
        hub.onLastTargetLeft = { downAt = "with \(hub.targets) targets" }
        let client = EmbeddedChannel(handler: CANBusHub.SocketcandSession(hub: hub), loop: loop)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try client.writeInbound(ByteBuffer(string: "< open test >< rawmode >"))
        #expect(hub.targets == 2, "a socketcand client is not a target")
        try a.writeInbound(ByteBuffer(string: "< vtarget-leave >"))
        #expect(try raw(a) == "< ok >" && downAt == nil)
        _ = try? b.finish()  // gone without a goodbye: a crashed run
        #expect(downAt == "with 0 targets" && hub.hadTargets)
    }

    @Test func framesReachEveryOtherMemberInOrderAndMalformedLinesAreCounted() throws {
        let loop = EmbeddedEventLoop()
        let hub = CANBusHub(name: "test", loop: loop, logPath: nil)
        let a = try target(hub, "a/can0"), b = try target(hub, "b/can0"), c = try target(hub, "c/can0")
        try fromUART(a, "t1231AA\rgarbage\rt4560\rT0000001080102030405060708\r")
        #expect(try sent(b) == "t1231AA\rt4560\rT0000001080102030405060708\r")
        #expect(try sent(c) == "t1231AA\rt4560\rT0000001080102030405060708\r")
        #expect(try sent(a) == "", "no echo to the sender")
        let counters = Dictionary(uniqueKeysWithValues: hub.counters())
        #expect(counters["a/can0"] == CANBusHub.Counters(sent: 3, received: 0, malformed: 1, dropped: 0))
        #expect(counters["b/can0"]?.received == 3)
    }

    @Test func faultsChangeDelivery() throws {
        let loop = EmbeddedEventLoop()
        let hub = CANBusHub(name: "test", loop: loop, logPath: nil)
        let a = try target(hub, "a/can0"), b = try target(hub, "b/can0")

        var f = CANBusHub.Faults()
        f.drop = 1
        hub.setFaults(f, member: "a/can0")
        try fromUART(a, "t1001AA\r")
        #expect(try sent(b) == "", "drop=1 drops every frame from a")
        try fromUART(b, "t2001BB\r")
        #expect(try sent(a) == "t2001BB\r", "frames from others still flow")

        f = CANBusHub.Faults()
        f.delayMilliseconds = 50
        hub.setFaults(f, member: "a/can0")
        try fromUART(a, "t1001AA\r")
        #expect(try sent(b) == "")
        loop.advanceTime(by: .milliseconds(49))
        #expect(try sent(b) == "")
        loop.advanceTime(by: .milliseconds(1))
        #expect(try sent(b) == "t1001AA\r", "delivered after the delay")

        f = CANBusHub.Faults()
        f.corrupt = 1
        hub.setFaults(f, member: "a/can0")
        try fromUART(a, "t1002AAAA\r")
        let corrupted = try sent(b)
        #expect(corrupted.hasPrefix("t1002") && corrupted != "t1002AAAA\r", "one bit flipped: \(corrupted)")

        f = CANBusHub.Faults()
        f.busOff = true
        hub.setFaults(f, member: "b/can0")
        try fromUART(a, "t1001AA\r")
        try fromUART(b, "t2001BB\r")
        #expect(try sent(b) == "" && (try sent(a)) == "", "a bus-off member neither sends nor hears")
        // issue 14 item 9: what is in force is listed (what `can fault` prints), cleared ones not.
        var busWide = CANBusHub.Faults()
        busWide.delayMilliseconds = 20
        hub.setFaults(busWide, member: nil)
        #expect(hub.activeFaults().map(\.member) == [nil, "a/can0", "b/can0"])
        #expect(hub.activeFaults().first?.faults == busWide)
        #expect(hub.activeFaults().last?.faults.busOff == true)
        hub.setFaults(CANBusHub.Faults(), member: nil)
        hub.setFaults(CANBusHub.Faults(), member: "b/can0")
        #expect(hub.activeFaults().map(\.member) == ["a/can0"])
        try fromUART(b, "t2001BB\r")
        #expect(try sent(a) == "t2001BB\r", "back on the bus")
    }
}
