import Foundation
import Testing
@testable import ReplayFormat

@Suite struct SerialComparisonTests {
    @Test func identicalStreams() {
        #expect(SerialComparison.compare(recorded: Array("abc".utf8), replayed: Array("abc".utf8)) == .identical(bytes: 3))
        #expect(SerialComparison.compare(recorded: [], replayed: []) == .identical(bytes: 0))
    }

    @Test func firstDifferingByteWithBothSidesAround() {
        let recorded = Array("hello world, checksum=1234\r\n".utf8)
        var replayed = recorded
        replayed[22] = UInt8(ascii: "9")
        guard case .differs(let offset, let a, let b) = SerialComparison.compare(recorded: recorded, replayed: replayed, context: 4) else {
            Issue.record("expected a difference"); return
        }
        #expect(offset == 22)
        #expect(a.start == 18 && String(decoding: a.bytes, as: UTF8.self) == "sum=1234\r" && a.byteAtOffset == UInt8(ascii: "1"))
        #expect(b.byteAtOffset == UInt8(ascii: "9"))
        let summary = SerialComparison.compare(recorded: recorded, replayed: replayed, context: 4).summary
        #expect(summary.hasPrefix("serial output differs at byte 22: recorded 1, replayed 9;"), "\(summary)")
        #expect(summary.contains("\"sum=1234\\r\" (from 18)"), "\(summary)")
    }

    /// One side ending early differs where it ended, and says so.
    @Test func aShorterSideDiffersWhereItEnds() {
        let c = SerialComparison.compare(recorded: Array("abcdef".utf8), replayed: Array("abc".utf8), context: 2)
        guard case .differs(let offset, let a, let b) = c else { Issue.record("expected a difference"); return }
        #expect(offset == 3 && a.byteAtOffset == UInt8(ascii: "d") && b.byteAtOffset == nil && b.bytes == Array("bc".utf8))
        #expect(c.summary.contains("replayed end of output"), "\(c.summary)")
        guard case .differs(3, _, _) = SerialComparison.compare(recorded: Array("abc".utf8), replayed: Array("abcd".utf8)) else {
            Issue.record("a longer replay differs at the recording's end"); return
        }
    }

    @Test func binaryBytesAreEscaped() {
        #expect(SerialComparison.escape([0x00, 0x41, 0xFF, 0x0A, 0x22, 0x5C]) == "\\x00A\\xff\\n\\\"\\\\")
    }

    /// Exhaustive over short streams: the offset is the first index that
    /// differs, and identical exactly when equal.
    @Test func agreesWithANaiveScanOnAllShortStreams() {
        let alphabet: [UInt8] = [0, 1]
        var streams: [[UInt8]] = [[]]
        for length in 1...4 { streams += (0..<(1 << length)).map { n in (0..<length).map { alphabet[(n >> $0) & 1] } } }
        for a in streams {
            for b in streams {
                let c = SerialComparison.compare(recorded: a, replayed: b)
                if a == b {
                    #expect(c == .identical(bytes: a.count))
                } else {
                    let naive = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
                    guard case .differs(let offset, _, _) = c else { Issue.record("\(a) vs \(b)"); continue }
                    #expect(offset == naive, "\(a) vs \(b)")
                }
            }
        }
    }
}

@Suite struct BundleManifestTests {
    static let digest = String(repeating: "ab", count: 32)

    static func manifest(files: [BundleFile]? = nil, version: Int = 1) -> BundleManifest {
        BundleManifest(formatVersion: version, createdAt: "2026-11-30T12:00:00Z", vtargetVersion: "0.1.0",
                       qemu: .init(binary: "qemu-system-arm", version: "QEMU emulator version 7.2.15", sha256: digest),
                       host: .init(kernel: "6.1.0", architecture: "x86_64"),
                       instance: .init(name: "board", namespace: "default", machine: "lm3s6965evb", icountShift: "auto"),
                       verdict: .init(exitCode: 1, reason: "test echo failed"),
                       files: files ?? [BundleFile(path: "spec.yaml", role: .spec, size: 10, sha256: digest),
                                        BundleFile(path: "qemu/replay.bin", role: .replayLog, size: 100, sha256: digest),
                                        BundleFile(path: "serial/uart0.raw", role: .serialOutput, device: "uart0", size: 5, sha256: digest)])
    }

    @Test func roundTrips() throws {
        let m = Self.manifest()
        #expect(try BundleManifest.decode(m.encoded()) == m)
        #expect(m.file(.serialOutput)?.device == "uart0")
    }

    @Test func aNewerFormatIsRefusedByName() {
        var m = Self.manifest(version: 3)
        m.files = []
        #expect(throws: BundleError(.newerFormat, "the bundle has format version 3; this vtarget reads up to 2: use a newer vtarget")) {
            try BundleManifest.decode(m.encoded())
        }
        // Even when the rest would not decode as this version's type.
        #expect((try? BundleManifest.decode(Array(#"{"formatVersion": 9, "everything": "else"}"#.utf8))) == nil)
        do { _ = try BundleManifest.decode(Array(#"{"formatVersion": 9}"#.utf8)) } catch { #expect(error.code == .newerFormat) }
    }

    @Test(arguments: ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "", "a/.", "a\u{0}b"])
    func unsafePathsAreRefused(_ path: String) {
        let m = Self.manifest(files: [BundleFile(path: "spec.yaml", role: .spec, size: 1, sha256: Self.digest),
                                      BundleFile(path: "r.bin", role: .replayLog, size: 1, sha256: Self.digest),
                                      BundleFile(path: path, role: .firmware, size: 1, sha256: Self.digest)])
        do { _ = try BundleManifest.decode(m.encoded()); Issue.record("accepted \(path)") } catch { #expect(error.code == .unsafePath) }
    }

    @Test func badManifestsSayWhatIsWrong() {
        func code(_ text: String) -> BundleError.Code? {
            do { _ = try BundleManifest.decode(Array(text.utf8)); return nil } catch { return error.code }
        }
        #expect(code("not json") == .notJSON)
        #expect(code("{}") == .notJSON)
        #expect(code(#"{"formatVersion": 0}"#) == .invalidField)
        #expect(code(#"{"formatVersion": 1}"#) == .invalidField)
        let dup = Self.manifest(files: [BundleFile(path: "spec.yaml", role: .spec, size: 1, sha256: Self.digest),
                                        BundleFile(path: "spec.yaml", role: .replayLog, size: 1, sha256: Self.digest)])
        #expect(code(String(decoding: dup.encoded(), as: UTF8.self)) == .duplicatePath)
        let badDigest = Self.manifest(files: [BundleFile(path: "spec.yaml", role: .spec, size: 1, sha256: "ABC"),
                                              BundleFile(path: "r.bin", role: .replayLog, size: 1, sha256: Self.digest)])
        #expect(code(String(decoding: badDigest.encoded(), as: UTF8.self)) == .invalidField)
        let noReplayLog = Self.manifest(files: [BundleFile(path: "spec.yaml", role: .spec, size: 1, sha256: Self.digest)])
        #expect(code(String(decoding: noReplayLog.encoded(), as: UTF8.self)) == .missingFile)
    }
}

@Suite struct BundleManifestExtensionTests {
    /// The argv file and the decoding flags travel with the manifest; a
    /// manifest without `decoding` (optional) still reads.
    @Test func launchFileAndDecodingRoundTrip() throws {
        var m = BundleManifestTests.manifest(files: [
            BundleFile(path: "spec.yaml", role: .spec, size: 1, sha256: BundleManifestTests.digest),
            BundleFile(path: "replay.bin", role: .replayLog, size: 1, sha256: BundleManifestTests.digest),
            BundleFile(path: "qemu/argv.json", role: .launch, size: 1, sha256: BundleManifestTests.digest),
        ])
        #expect(try BundleManifest.decode(m.encoded()).decoding == nil)
        m.decoding = .init(lenient: true, allowHostPaths: false, allowExtraArgs: true)
        let back = try BundleManifest.decode(m.encoded())
        #expect(back == m)
        #expect(back.file(.launch)?.path == "qemu/argv.json")
        #expect(String(decoding: m.encoded(), as: UTF8.self).contains(#""role" : "launch""#))
    }

    @Test func escapeKeepsTextReadableAndBytesExact() {
        #expect(SerialComparison.escape(Array("sum 6 crc a8\r\n".utf8)) == "sum 6 crc a8\\r\\n")
        #expect(SerialComparison.escape([0, 0x7F, 0xFF, 0x22, 0x5C]) == "\\x00\\x7f\\xff\\\"\\\\")
    }
}
