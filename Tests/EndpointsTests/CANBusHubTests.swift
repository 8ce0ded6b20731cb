import CANProtocol
import NIOCore
import NIOEmbedded
import Testing
@testable import Endpoints

/// The bus hub with targets attached through SLCAN, on embedded channels.
@Suite struct CANBusHubTests {
    func target(_ hub: CANBusHub, _ name: String) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: SLCANMember(hub: hub, name: name), loop: hub.loop as! EmbeddedEventLoop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func sent(_ channel: EmbeddedChannel) throws -> String {
        var out = ""
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += String(buffer: b) }
        return out
    }

    @Test func framesReachEveryOtherMemberInOrderAndMalformedLinesAreCounted() throws {
        let loop = EmbeddedEventLoop()
        let hub = CANBusHub(name: "test", loop: loop, logPath: nil)
        let a = try target(hub, "a/can0"), b = try target(hub, "b/can0"), c = try target(hub, "c/can0")
        try a.writeInbound(ByteBuffer(string: "t1231AA\rgarbage\rt4560\rT000000108"))
        try a.writeInbound(ByteBuffer(string: "0102030405060708\r\nt12"))
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
        try a.writeInbound(ByteBuffer(string: "t1001AA\r"))
        #expect(try sent(b) == "", "drop=1 drops every frame from a")
        try b.writeInbound(ByteBuffer(string: "t2001BB\r"))
        #expect(try sent(a) == "t2001BB\r", "frames from others still flow")

        f = CANBusHub.Faults()
        f.delayMilliseconds = 50
        hub.setFaults(f, member: "a/can0")
        try a.writeInbound(ByteBuffer(string: "t1001AA\r"))
        #expect(try sent(b) == "")
        loop.advanceTime(by: .milliseconds(49))
        #expect(try sent(b) == "")
        loop.advanceTime(by: .milliseconds(1))
        #expect(try sent(b) == "t1001AA\r", "delivered after the delay")

        f = CANBusHub.Faults()
        f.corrupt = 1
        hub.setFaults(f, member: "a/can0")
        try a.writeInbound(ByteBuffer(string: "t1002AAAA\r"))
        let corrupted = try sent(b)
        #expect(corrupted.hasPrefix("t1002") && corrupted != "t1002AAAA\r", "one bit flipped: \(corrupted)")

        f = CANBusHub.Faults()
        f.busOff = true
        hub.setFaults(f, member: "b/can0")
        try a.writeInbound(ByteBuffer(string: "t1001AA\r"))
        try b.writeInbound(ByteBuffer(string: "t2001BB\r"))
        #expect(try sent(b) == "" && (try sent(a)) == "", "a bus-off member neither sends nor hears")
        hub.setFaults(CANBusHub.Faults(), member: "b/can0")
        try b.writeInbound(ByteBuffer(string: "t2001BB\r"))
        #expect(try sent(a) == "t2001BB\r", "back on the bus")
    }
}
