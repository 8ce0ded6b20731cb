import Testing
@testable import CANProtocol

@Suite struct CANCodecTests {
    static let frames: [CANFrame] = [
        CANFrame(id: 0x123, data: [0xDE, 0xAD, 0xBE, 0xEF]),
        CANFrame(id: 0x7FF, data: []),
        CANFrame(id: 0x000, data: [1, 2, 3, 4, 5, 6, 7, 8]),
        CANFrame(id: 0x1234_5678, data: [0xFF]),
        CANFrame(id: 0x10, extended: true, data: [0]),
        CANFrame(id: 0x321, remote: true, dlc: 4),
        CANFrame(id: 0x1FFF_FFFF, remote: true, dlc: 0),
    ]

    @Test(arguments: frames)
    func slcanRoundTrip(_ f: CANFrame) throws {
        var line = SLCAN.encode(f)
        #expect(line.last == 0x0D)
        line.removeLast()
        #expect(try SLCAN.decode(line) == f)
    }

    @Test func slcanWire() {
        #expect(String(decoding: SLCAN.encode(CANFrame(id: 0x123, data: [0xDE, 0xAD])), as: UTF8.self) == "t1232DEAD\r")
        #expect(String(decoding: SLCAN.encode(CANFrame(id: 0x12345, data: [])), as: UTF8.self) == "T000123450\r")
        #expect(String(decoding: SLCAN.encode(CANFrame(id: 0x321, remote: true, dlc: 2)), as: UTF8.self) == "r3212\r")
    }

    @Test(arguments: ["", "x123", "t12", "t1239", "t1232DEA", "t1232DEADBE", "tZZZ0", "T1FFFFFFF1", "T2000000000", "r1232AA", "t8001AA"])
    func slcanRefuses(_ line: String) {
        #expect(throws: CANCodecError.self) { try SLCAN.decode(Array(line.utf8)) }
    }

    @Test func slcanSplitsLinesAndBoundsThem() {
        var s = SLCAN.LineSplitter()
        #expect(s.append(Array("t1231AA\rt4".utf8)).map { String(decoding: $0, as: UTF8.self) } == ["t1231AA"])
        #expect(s.append(Array("560\r\n\r".utf8)).map { String(decoding: $0, as: UTF8.self) } == ["t4560"])
        #expect(s.append([UInt8](repeating: 0x41, count: 200)).count == 3, "an endless line comes out in pieces of 65 bytes")
    }

    @Test func socketcandMessages() throws {
        #expect(try Socketcand.parse(Array("< open vcan0 >".utf8)) == .open("vcan0"))
        #expect(try Socketcand.parse(Array("< rawmode >".utf8)) == .rawmode)
        #expect(try Socketcand.parse(Array("< send 123 4 de ad be ef >".utf8)) == .send(CANFrame(id: 0x123, data: [0xDE, 0xAD, 0xBE, 0xEF])))
        #expect(try Socketcand.parse(Array("< send 00000010 1 5 >".utf8)) == .send(CANFrame(id: 0x10, extended: true, data: [5])))
        #expect(try Socketcand.parse(Array("< send 7FF 0  >".utf8)) == .send(CANFrame(id: 0x7FF, data: [])))
        #expect(try Socketcand.parse(Array("< vtarget-fault drop=0.5 busoff=node-a >".utf8)) == .fault(["drop": "0.5", "busoff": "node-a"]))
        #expect(try Socketcand.parse(Array("< vtarget-member node-a/can0 >".utf8)) == .member("node-a/can0"))
        #expect(try Socketcand.parse(Array("< vtarget-leave >".utf8)) == .leave)
        for bad in ["< send 123 2 aa >", "< send 123 9 1 2 3 4 5 6 7 8 9 >", "< send 800 1 00 >", "< send xyz 1 00 >", "send", "< >",
                    "< vtarget-member >", "< vtarget-member a b >"] {
            #expect(throws: CANCodecError.self, "\(bad)") { try Socketcand.parse(Array(bad.utf8)) }
        }
        let out = String(decoding: Socketcand.frameMessage(CANFrame(id: 0x123, data: [0x11, 0x22]), seconds: 12, microseconds: 34), as: UTF8.self)
        #expect(out == "< frame 123 12.000034 1122 >")
        let ext = String(decoding: Socketcand.frameMessage(CANFrame(id: 0x10, extended: true, data: []), seconds: 1, microseconds: 0), as: UTF8.self)
        #expect(ext == "< frame 00000010 1.000000  >")
    }

    @Test(arguments: frames.filter { !$0.remote })
    func socketcandRoundTrip(_ f: CANFrame) throws {
        #expect(try Socketcand.parse(Socketcand.sendMessage(f)) == .send(f))
        #expect(Socketcand.parseFrame(Socketcand.frameMessage(f, seconds: 5, microseconds: 7)) == f)
    }

    @Test func socketcandSplitter() {
        var s = Socketcand.MessageSplitter()
        #expect(s.append(Array("junk< open x >< raw".utf8)).count == 1)
        #expect(s.append(Array("mode >".utf8)).map { String(decoding: $0, as: UTF8.self) } == ["< rawmode >"])
        #expect(s.junk == 4)
        var client = Socketcand.MessageSplitter(maxMessage: 1 << 16)
        let long = "< ok " + String(repeating: "member:sent=1 ", count: 100) + ">"
        #expect(client.append(Array(long.utf8)).count == 1, "a long reply passes a client's splitter")
        var server = Socketcand.MessageSplitter()
        #expect(server.append(Array(long.utf8)).isEmpty, "but not a server's")
    }

    @Test func cansendSyntax() throws {
        #expect(try CANText.parseCansend("123#DEADBEEF") == CANFrame(id: 0x123, data: [0xDE, 0xAD, 0xBE, 0xEF]))
        #expect(try CANText.parseCansend("12345678#00") == CANFrame(id: 0x1234_5678, extended: true, data: [0]))
        #expect(try CANText.parseCansend("00000123#") == CANFrame(id: 0x123, extended: true, data: []))
        #expect(try CANText.parseCansend("123#R") == CANFrame(id: 0x123, remote: true, dlc: 0))
        #expect(try CANText.parseCansend("123#R4") == CANFrame(id: 0x123, remote: true, dlc: 4))
        #expect(try CANText.parseCansend("123#11.22.33") == CANFrame(id: 0x123, data: [0x11, 0x22, 0x33]))
        for bad in ["123", "12#00", "800#00", "123#0", "123#001122334455667788", "123#R9", "XYZ#00"] {
            #expect(throws: CANCodecError.self, "\(bad)") { try CANText.parseCansend(bad) }
        }
        #expect(CANText.candump(CANFrame(id: 0x123, data: [0xDE, 0xAD]), bus: "vehicle") == "  vehicle  123        [2]  DE AD")
        #expect(CANText.cansend(CANFrame(id: 0x123, remote: true, dlc: 2)) == "123#R2")
    }
}
