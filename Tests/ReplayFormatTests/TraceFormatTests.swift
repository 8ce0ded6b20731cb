import Foundation
import Testing
@testable import ReplayFormat

@Suite struct TraceTimeTests {
    @Test(arguments: [(Int64(0), "0.000000"), (1, "0.000001"), (999_999, "0.999999"), (1_000_000, "1.000000"),
                      (1_764_550_923_249_713, "1764550923.249713"), (-5, "0.000000")])
    func microsecondsAsSecondsWithSixDigits(_ us: Int64, _ text: String) {
        #expect(TraceTime.text(us) == text)
        if us >= 0 { #expect(TraceTime.parse(Substring(text)) == us) }
    }

    @Test(arguments: ["", ".", "1", "1.5", "1.0000001", "a.000000", "1.00000a", "-1.000000", ".000000", "1.000000.1"])
    func notATime(_ text: String) {
        #expect(TraceTime.parse(Substring(text)) == nil)
    }
}

@Suite struct SerialInputTraceTests {
    @Test func aLineIsTimeThenEscapedBytes() {
        #expect(SerialInputTrace.line(microseconds: 2_150_000, bytes: Array("ping\r".utf8)) == #"(2.150000) "ping\r""#)
        #expect(SerialInputTrace.line(microseconds: 7, bytes: [0, 0x22, 0xFF]) == #"(0.000007) "\x00\"\xff""#)
        #expect(SerialInputTrace.line(microseconds: 0, bytes: []) == #"(0.000000) """#)
    }

    /// Every byte value, alone and in a run with its neighbours, reads back as written.
    @Test func everyByteRoundTrips() {
        for b in 0...255 {
            let bytes = [UInt8(b)]
            let parsed = SerialInputTrace.parse(Substring(SerialInputTrace.line(microseconds: Int64(b), bytes: bytes)))
            #expect(parsed?.microseconds == Int64(b) && parsed?.bytes == bytes, "byte \(b)")
        }
        let all = (0...255).map(UInt8.init)
        #expect(SerialInputTrace.parse(Substring(SerialInputTrace.line(microseconds: 1, bytes: all)))?.bytes == all)
    }

    @Test(arguments: ["", "2.0 \"a\"", "(2.000000 \"a\"", "(2.000000)\"a\"", "(2.000000) a", "(2.000000) \"a",
                      #"(2.000000) "\q""#, #"(2.000000) "\x4""#, #"(2.000000) "\xZZ""#, #"(2.000000) "a"b""#, "(2.000000) \"\u{7F}\"",
                      #"(x) "a""#])
    func linesItNeverWritesAreRefused(_ line: String) {
        #expect(SerialInputTrace.parse(Substring(line)) == nil, "\(line)")
    }
}

@Suite struct CandumpLogTests {
    typealias F = CandumpLog.Frame

    /// can-utils' `lib.c` forms, one per kind of frame.
    @Test(arguments: [
        (F(id: 0x123, extended: false, data: [0xDE, 0xAD, 0xBE, 0xEF]), "123#DEADBEEF"),
        (F(id: 0x7FF, extended: false), "7FF#"),
        (F(id: 0x1, extended: true, data: [0]), "00000001#00"),
        (F(id: 0x1FFF_FFFF, extended: true, data: Array(repeating: 0xA5, count: 8)), "1FFFFFFF#A5A5A5A5A5A5A5A5"),
        (F(id: 0x123, extended: false, remote: true), "123#R"),
        (F(id: 0x123, extended: false, remote: true, dlc: 4), "123#R4"),
        (F(id: 0x12345, extended: true, remote: true, dlc: 8), "00012345#R8"),
        (F(id: 0x123, extended: false, fd: true, fdFlags: 1, data: Array(0..<12)), "123##1000102030405060708090A0B"),
        (F(id: 0x456, extended: true, fd: true, data: []), "00000456##0"),
    ])
    func frameText(_ frame: F, _ text: String) {
        #expect(CandumpLog.frameText(frame) == text)
    }

    @Test func aLineIsTimeInterfaceFrameDirection() {
        let f = F(id: 0x123, extended: false, data: [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(CandumpLog.line(microseconds: 1_436_509_052_249_713, interface: "vehicle", frame: f, direction: .sent)
            == "(1436509052.249713) vehicle 123#DEADBEEF T")
        #expect(CandumpLog.line(microseconds: 1_000_001, interface: "can0", frame: f, direction: .received)
            == "(1.000001) can0 123#DEADBEEF R")
    }

    /// An id wider than its kind allows is cut to the kind's bits, never printed wider.
    @Test func idsKeepTheirWidth() {
        #expect(CandumpLog.frameText(F(id: 0xFFFF, extended: false)) == "7FF#")
        #expect(CandumpLog.frameText(F(id: 0xFFFF_FFFF, extended: true)) == "1FFFFFFF#")
    }
}

@Suite struct BundleManifestTraceTests {
    /// A manifest as vtarget wrote it before traces (no `entries`, no
    /// `traceOrigin`) reads, and one with them reads back equal.
    @Test func oldAndNewManifestsRead() throws {
        let d = BundleManifestTests.digest
        let old = """
            {"createdAt":"2026-11-30T12:00:00Z","files":[{"path":"spec.yaml","role":"spec","sha256":"\(d)","size":10},
             {"path":"replay.bin","role":"replayLog","sha256":"\(d)","size":100},
             {"device":"uart0","path":"serial/uart0.out","role":"serialOutput","sha256":"\(d)","size":5}],
             "formatVersion":1,"host":{"architecture":"x86_64","kernel":"Linux 6.1"},
             "instance":{"icountShift":"auto","machine":"lm3s6965evb","name":"board","namespace":"default"},
             "omittedImages":[],"qemu":{"binary":"qemu-system-arm","sha256":"\(d)","version":"QEMU 7.2"},
             "vtargetVersion":"0.1.0","verdict":{"exitCode":0,"reason":"until matched"}}
            """
        let m = try BundleManifest.decode(Array(old.utf8))
        #expect(m.traceOrigin == nil && m.files.allSatisfy { $0.entries == nil && !$0.isTrace })

        var new = m
        new.traceOrigin = "2026-11-30T12:00:00.123456Z"
        new.files += [BundleFile(path: "traces/serial-uart0.in.log", role: .serialInput, device: "uart0", size: 3, sha256: d, entries: 2),
                      BundleFile(path: "traces/can-can0.log", role: .canTrace, device: "can0", size: 3, sha256: d, entries: 0)]
        let back = try BundleManifest.decode(new.encoded())
        #expect(back == new)
        #expect(back.files.filter(\.isTrace).map(\.entries) == [2, 0])
        #expect(BundleManifestTests.manifest().encoded().count > 0)
        #expect(!String(decoding: m.encoded(), as: UTF8.self).contains("entries"), "absent stays absent")
    }

    @Test func aNegativeCountIsRefused() {
        let d = BundleManifestTests.digest
        let m = BundleManifestTests.manifest(files: [BundleFile(path: "spec.yaml", role: .spec, size: 1, sha256: d),
                                                     BundleFile(path: "r.bin", role: .replayLog, size: 1, sha256: d),
                                                     BundleFile(path: "t.log", role: .canTrace, size: 1, sha256: d, entries: -1)])
        #expect(throws: BundleError(.invalidField, "manifest.json: \"t.log\" has entries -1; expected 0 or more")) {
            try BundleManifest.decode(m.encoded())
        }
    }
}
