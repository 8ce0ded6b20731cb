import Foundation
import Testing
import TestSupport

/// `run --record`, `--bundle-on-failure`, `replay` and `bundle`: the checksum
/// sample (a running CRC-32 of its serial input, stamped with its SysTick
/// count) recorded with input typed at random moments, then replayed from
/// QEMU's log alone.
@Suite(.serialized) struct ReplayTests {
    static let checksumSpec = targetYAML("cks", """
        machine: lm3s6965evb
        drives: [{name: firmware, type: pflash, source: {configMap: {name: lm3s6965evb-checksum-firmware}}}]
        devices: [{name: uart0, type: serial}]
        """)

    /// A private directory for TMPDIR: what a replay leaves there shows.
    static func emptyDirectory() -> String {
        let d = makeRuntimeDir() + "-tmp"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: false)
        return d
    }

    static func leftovers(_ dir: String) -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] }

    /// Runs `sh -c script` with TMPDIR set; what it printed.
    static func sh(_ script: String, runtime: String, tmp: String) throws -> RunResult {
        try finish(launch(["-c", script], runtime: runtime, executable: "/bin/sh", environment: ["TMPDIR": tmp]))
    }

    /// One recording, then every check that needs one: five identical
    /// replays, a tampered input byte found at its offset, a tampered file
    /// refused, and bad bundles refused with nothing started or left behind.
    @Test func recordReplayAndTamper() throws {
        let runtime = makeRuntimeDir()
        let tmp = Self.emptyDirectory()
        let bundles = runtime + "-bundles"
        defer { for d in [runtime, tmp, bundles, runtime + ".yaml"] { try? FileManager.default.removeItem(atPath: d) } }
        try Self.checksumSpec.write(toFile: runtime + ".yaml", atomically: true, encoding: .utf8)
        // Lines typed at random moments, each under 16 bytes (the PL011's receive FIFO).
        let lines = ["hello", "world", "vtarget", "replay", "0123456789", "abc", "fail", "done"]
        var typing = "sleep 0.5"
        for l in lines { typing += "; printf '\(l)\\r\\n'; sleep 0.\(Int.random(in: 1...6))" }
        let record = try Self.sh("""
            cd \(repoRoot) && timeout 120 \(vtarget) run -f \(runtime).yaml -f \(firmware)/lm3s6965evb-checksum-firmware.yaml \
              --record \(bundles) --timeout 90s -- sh -c "(\(typing); sleep 1) | socat -u - UNIX-CONNECT:\\$VTARGET_SERIAL_UART0"
            """, runtime: runtime, tmp: tmp)
        #expect(record.code == 0, "\(record.stdout)\n\(record.stderr)")
        #expect(record.stdout.contains("checksum FAILED"), "\(record.stdout)")
        let made = Self.leftovers(bundles).filter { $0.hasSuffix(".vtb") }
        #expect(made.count == 1, "\(made)")
        #expect(Self.leftovers(tmp).isEmpty, "recording left \(Self.leftovers(tmp)) in TMPDIR")
        guard let name = made.first else { return }
        let bundle = bundles + "/" + name
        // "\r\n" is one Character: split on every newline.
        let sums = record.stdout.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("sum ") }
        #expect(sums.count == lines.count, "\(record.stdout)")

        // Five replays: each the recorded bytes, ticks included.
        var outputs: Set<String> = []
        for _ in 0..<5 {
            let r = try Self.sh("timeout 120 \(vtarget) replay \(bundle)", runtime: runtime, tmp: tmp)
            #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
            #expect(r.stderr.contains("uart0: serial output identical"), "\(r.stderr)")
            #expect(r.stderr.contains("the recorded run ended with exit 0"), "\(r.stderr)")
            outputs.insert(r.stdout)
            #expect(Self.leftovers(tmp).isEmpty, "replay left \(Self.leftovers(tmp))")
        }
        #expect(outputs.count == 1)
        #expect(outputs.first.map { o in sums.allSatisfy { o.contains($0) } } == true, "\(outputs)")

        // --until OFFSET: the replay stops once that many bytes came and compares that far.
        let byOffset = try Self.sh("timeout 120 \(vtarget) replay \(bundle) --until 20", runtime: runtime, tmp: tmp)
        #expect(byOffset.code == 0, "\(byOffset.stdout)\n\(byOffset.stderr)")
        #expect(byOffset.stderr.contains("uart0: serial output identical (20 bytes)"), "\(byOffset.stderr)")
        #expect(!byOffset.stdout.contains("checksum FAILED"), "the replay went past offset 20: \(byOffset.stdout)")
        // --until REGEX: it stops at the third line's whole sum ("hello", "world", "vtarget": 22 bytes), before "fail"
        // (the ticks' eight digits: output comes in pieces, and a shorter match would stop mid-line).
        let byPattern = try Self.sh("timeout 120 \(vtarget) replay \(bundle) --until 'sum 22 crc [0-9a-f]{8} t [0-9a-f]{8}'", runtime: runtime, tmp: tmp)
        #expect(byPattern.code == 0, "\(byPattern.stdout)\n\(byPattern.stderr)")
        #expect(byPattern.stdout.contains("sum 22 crc ") && !byPattern.stdout.contains("checksum FAILED"), "\(byPattern.stdout)")
        #expect(byPattern.stderr.contains("uart0: serial output identical ("), "\(byPattern.stderr)")
        #expect(sums.count > 2 && byPattern.stdout.contains(String(sums[2])), "stopped elsewhere than at the recorded third sum: \(byPattern.stdout)")
        #expect(Self.leftovers(tmp).isEmpty, "replay --until left \(Self.leftovers(tmp))")

        // bundle show: the instance, the verdict and the last lines.
        let show = try Self.sh("\(vtarget) bundle show \(bundle)", runtime: runtime, tmp: tmp)
        #expect(show.code == 0, "\(show.stderr)")
        #expect(show.stdout.contains("default/cks (machine lm3s6965evb)") && show.stdout.contains("replay.bin  replayLog")
                && show.stdout.contains("checksum FAILED"), "\(show.stdout)")
        let json = try Self.sh("\(vtarget) bundle show -o json \(bundle)", runtime: runtime, tmp: tmp)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((parsed?["manifest"] as? [String: Any])?["formatVersion"] as? Int == 1, "\(json.stdout)")

        // One typed byte changed in QEMU's log ("vtarget" -> "xtarget"), the digest fixed: the replay differs there.
        let work = runtime + "-x"
        let ex = try Self.sh("\(vtarget) bundle extract \(bundle) -C \(work)", runtime: runtime, tmp: tmp)
        #expect(ex.code == 0, "\(ex.stderr)")
        var log = try Data(contentsOf: URL(fileURLWithPath: work + "/replay.bin"))
        // QEMU logs each read of the UART's FIFO as an event ending in the bytes read,
        // after their count as a big-endian dword (chardev 0, one byte: 00 00000001 'v').
        // 'v' is typed only in "vtarget".
        // Those six bytes can also be part of a number in another event (an instruction
        // count of 0x176xxxx): the typed 'v' is the one whose read events for "target"
        // follow it in order.
        func read(_ c: Character) -> Data { Data([0, 0, 0, 0, 1, UInt8(ascii: c.unicodeScalars.first!)]) }
        func typedWord(from start: Data.Index) -> Bool {
            var next = start
            for c in "target" {
                guard let r = log.range(of: read(c), in: next..<log.endIndex) else { return false }
                next = r.upperBound
            }
            return true
        }
        var typedV: Int?
        var from = log.startIndex
        while typedV == nil, let r = log.range(of: read("v"), in: from..<log.endIndex) {
            if typedWord(from: r.upperBound) { typedV = r.upperBound - 1 }
            from = r.lowerBound + 1
        }
        let at = typedV ?? log.range(of: Data("vtarget".utf8))?.lowerBound
        try #require(at != nil, "no typed byte found in the replay log")
        log[at!] = UInt8(ascii: "x")
        try log.write(to: URL(fileURLWithPath: work + "/replay.bin"))
        let fixed = work + "-fixed.vtb", unfixed = work + "-unfixed.vtb"
        defer { for p in [work, fixed, unfixed] { try? FileManager.default.removeItem(atPath: p) } }
        let members = "manifest.json $(cd \(work) && find . -type f ! -name manifest.json | sed 's|^./||' | sort | tr '\\n' ' ')"
        _ = try Self.sh("cd \(work) && tar -cf \(unfixed) \(members)", runtime: runtime, tmp: tmp)
        let digest = try Self.sh("sha256sum \(work)/replay.bin | cut -d' ' -f1", runtime: runtime, tmp: tmp).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: work + "/manifest.json"))) as! [String: Any]
        manifest["files"] = (manifest["files"] as! [[String: Any]]).map { f in
            var f = f
            if f["path"] as? String == "replay.bin" { f["sha256"] = digest }
            return f
        }
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: work + "/manifest.json"))
        _ = try Self.sh("cd \(work) && tar -cf \(fixed) \(members)", runtime: runtime, tmp: tmp)

        let diverged = try Self.sh("timeout 120 \(vtarget) replay \(fixed)", runtime: runtime, tmp: tmp)
        #expect(diverged.code == 1, "\(diverged.stdout)\n\(diverged.stderr)")
        #expect(diverged.stderr.contains("uart0: serial output differs at byte "), "\(diverged.stderr)")
        let refused = try Self.sh("timeout 60 \(vtarget) replay \(unfixed)", runtime: runtime, tmp: tmp)
        #expect(refused.code == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains("replay.bin has sha256 ") && refused.stderr.contains("the bundle was changed"), "\(refused.stderr)")

        // Bad bundles: exit 2, a clear message, no QEMU, nothing left in TMPDIR.
        let truncated = work + "-truncated.vtb", newer = work + "-newer.vtb"
        defer { for p in [truncated, newer] { try? FileManager.default.removeItem(atPath: p) } }
        let size = (try FileManager.default.attributesOfItem(atPath: bundle)[.size] as? Int) ?? 0
        try Data(contentsOf: URL(fileURLWithPath: bundle)).prefix(size / 2).write(to: URL(fileURLWithPath: truncated))
        manifest["formatVersion"] = 99
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: work + "/manifest.json"))
        _ = try Self.sh("cd \(work) && tar -cf \(newer) \(members)", runtime: runtime, tmp: tmp)
        let cases: [(String, String, String)] = [
            ("\(vtarget) replay \(truncated)", "not a whole bundle (truncated or not a tar)", "truncated"),
            ("\(vtarget) replay \(newer)", "format version 99; this vtarget reads up to 2", "newer"),
            ("env PATH=/nonexistent \(vtarget) replay \(bundle)", "qemu-system-arm not found in PATH", "no QEMU"),
            ("\(vtarget) bundle show \(truncated)", "not a whole bundle", "show truncated"),
        ]
        for (command, message, what) in cases {
            let r = try Self.sh("timeout 60 " + command, runtime: runtime, tmp: tmp)
            #expect(r.code == 2, "\(what): \(r.stdout)\n\(r.stderr)")
            #expect(r.stderr.contains(message), "\(what): \(r.stderr)")
            #expect(!r.stderr.contains("QEMU exited"), "\(what): \(r.stderr)")
            #expect(Self.leftovers(tmp).isEmpty, "\(what) left \(Self.leftovers(tmp))")
        }
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }

    /// A declarative test that fails leaves exactly one bundle; its replay,
    /// with no network at all, prints the same failing output.
    @Test func bundleOnFailureReplaysOffline() throws {
        let runtime = makeRuntimeDir()
        let tmp = Self.emptyDirectory()
        let bundles = runtime + "-bundles"
        defer { for d in [runtime, tmp, bundles, runtime + ".yaml"] { try? FileManager.default.removeItem(atPath: d) } }
        let spec = Self.checksumSpec + """

              readiness: {device: uart0, pattern: "ready", timeout: 30s}
              tests:
                - name: checksum passes
                  steps:
                    - send: "fail\\r"
                    - {expect: "checksum ok", timeout: 3s}
            """
        try spec.write(toFile: runtime + ".yaml", atomically: true, encoding: .utf8)
        let r = try Self.sh("""
            cd \(repoRoot) && timeout 120 \(vtarget) run -f \(runtime).yaml -f \(firmware)/lm3s6965evb-checksum-firmware.yaml \
              --bundle-on-failure \(bundles) --timeout 60s
            """, runtime: runtime, tmp: tmp)
        #expect(r.code == 1, "\(r.stdout)\n\(r.stderr)")
        let made = Self.leftovers(bundles).filter { $0.hasSuffix(".vtb") }
        #expect(made.count == 1 && Self.leftovers(bundles).count == 1, "\(Self.leftovers(bundles))")
        guard let name = made.first else { return }
        // No network namespace access at all: a fresh, empty one (a user namespace too when not root).
        let unshare = getuid() == 0 ? "unshare -n" : "unshare -rn"
        let offline = try Self.sh("timeout 120 \(unshare) \(vtarget) replay \(bundles)/\(name)", runtime: runtime, tmp: tmp)
        #expect(offline.code == 0, "\(offline.stdout)\n\(offline.stderr)")
        #expect(offline.stdout.contains("checksum FAILED"), "\(offline.stdout)")
        #expect(offline.stderr.contains("serial output identical") && offline.stderr.contains("the recorded run ended with exit 1"), "\(offline.stderr)")

        // A run that passes leaves no bundle.
        let passing = try Self.sh("""
            cd \(repoRoot) && timeout 120 \(vtarget) run -f \(runtime).yaml -f \(firmware)/lm3s6965evb-checksum-firmware.yaml \
              --bundle-on-failure \(bundles)-ok --until ready --timeout 60s
            """, runtime: runtime, tmp: tmp)
        defer { try? FileManager.default.removeItem(atPath: bundles + "-ok") }
        #expect(passing.code == 0, "\(passing.stderr)")
        #expect(Self.leftovers(bundles + "-ok").isEmpty)
    }

    /// gdb-multiarch in batch mode on a replay (mps2-an385: its snapshot
    /// loads, so the recording starts with one): a breakpoint, a register,
    /// and `reverse-stepi` back to the previous PC.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb-multiarch"), "needs gdb-multiarch"))
    func gdbStepsBackwardsOnAReplay() throws {
        let runtime = makeRuntimeDir()
        let tmp = Self.emptyDirectory()
        let bundles = runtime + "-bundles"
        defer { for d in [runtime, tmp, bundles, runtime + ".yaml"] { try? FileManager.default.removeItem(atPath: d) } }
        try targetYAML("dbg", """
            machine: mps2-an385
            drives: [{name: firmware, type: pflash, source: {configMap: {name: mps2-an385-checksum-firmware}}}]
            devices: [{name: uart0, type: serial}]
            """).write(toFile: runtime + ".yaml", atomically: true, encoding: .utf8)
        // One byte at a time: the CMSDK UART holds one.
        let record = try Self.sh("""
            cd \(repoRoot) && timeout 120 \(vtarget) run -f \(runtime).yaml -f \(firmware)/mps2-an385-checksum-firmware.yaml \
              --record \(bundles) --timeout 90s -- sh -c "(sleep 0.5; printf h; sleep 0.2; printf i; sleep 0.2; printf '\\r'; sleep 1) | socat -u - UNIX-CONNECT:\\$VTARGET_SERIAL_UART0"
            """, runtime: runtime, tmp: tmp)
        #expect(record.code == 0, "\(record.stdout)\n\(record.stderr)")
        #expect(record.stdout.contains("sum 3 crc "), "\(record.stdout)")
        guard let name = Self.leftovers(bundles).first(where: { $0.hasSuffix(".vtb") }) else {
            Issue.record("no bundle")
            return
        }
        let r = try Self.sh("""
            timeout 120 \(vtarget) replay \(bundles)/\(name) --gdb -- -batch -ex 'break crc32_update' -ex continue -ex 'info registers pc' \
              -ex stepi -ex 'info registers pc' -ex reverse-stepi -ex 'info registers pc' < /dev/null
            """, runtime: runtime, tmp: tmp)
        // gdb and the replayed serial output share stdout, so a serial byte
        // may sit right before gdb's "pc" line: match it anywhere in a line.
        let pcs = r.stdout.matches(of: /pc\s+(0x[0-9a-f]+)\s+0x/).map { $0.1 }
        #expect(pcs.count == 3, "\(r.stdout)\n\(r.stderr)")
        if pcs.count == 3 {
            #expect(pcs[0] != pcs[1], "stepi did not move: \(pcs)")
            #expect(pcs[2] == pcs[0], "reverse-stepi did not return to the previous pc: \(pcs)")
        }
        #expect(r.stdout.contains("Breakpoint 1"), "\(r.stdout)")
        #expect(Self.leftovers(tmp).isEmpty, "\(Self.leftovers(tmp))")
    }

    /// A writable raw drive cannot hold QEMU's start snapshot (which made
    /// QEMU refuse to start): such a board is recorded without it, replays
    /// identically from the start, and `bundle show` lists no snapshot.
    @Test func aBoardWithAWritableRawDriveIsRecordedWithoutTheStartSnapshot() throws {
        let runtime = makeRuntimeDir()
        let tmp = Self.emptyDirectory()
        let bundles = runtime + "-bundles"
        let disk = runtime + "-scratch.img"
        defer { for d in [runtime, tmp, bundles, disk, runtime + ".yaml"] { try? FileManager.default.removeItem(atPath: d) } }
        FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20))
        try """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: pcd}
            spec:
              architecture: x86_64
              qemuConfig:
                machine: pc
                memory: 64Mi
                accel: tcg
                drives:
                  - {name: kernel, type: kernel, source: {configMap: {name: x86-pc-firmware}}}
                  - {name: scratch, type: disk, format: raw, source: {hostPath: {path: "\(disk)"}}}
                devices: [{name: com1, type: serial}]
            """.write(toFile: runtime + ".yaml", atomically: true, encoding: .utf8)
        let record = try Self.sh("""
            cd \(repoRoot) && timeout 120 \(vtarget) run -f \(runtime).yaml -f \(firmware)/x86-pc-firmware.yaml --allow-host-paths \
              --record \(bundles) --until 'echo ready' --timeout 90s
            """, runtime: runtime, tmp: tmp)
        #expect(record.code == 0, "\(record.stdout)\n\(record.stderr)")
        guard let name = Self.leftovers(bundles).first(where: { $0.hasSuffix(".vtb") }) else {
            Issue.record("no bundle: \(record.stderr)")
            return
        }
        let show = try Self.sh("\(vtarget) bundle show \(bundles)/\(name)", runtime: runtime, tmp: tmp)
        #expect(show.stdout.contains("replayLog") && !show.stdout.contains("replaySnapshot"), "\(show.stdout)")
        let r = try Self.sh("timeout 120 \(vtarget) replay \(bundles)/\(name)", runtime: runtime, tmp: tmp)
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("com1: serial output identical"), "\(r.stderr)")
        #expect(Self.leftovers(tmp).isEmpty, "left \(Self.leftovers(tmp)) in TMPDIR")
    }

    @Test func vmsAreNotRecorded() throws {
        let runtime = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let r = try vt(["run", "-f", "examples/kubevirt-vm.yaml", "--record", runtime + "-b"], runtime: runtime)
        #expect(r.code == 2, "\(r.stderr)")
        #expect(r.stderr.contains("VMs are not recorded"), "\(r.stderr)")
    }

    /// A pace for recorded input that is not a duration: exit 2 before anything starts.
    @Test func aBadInputGapIsRefused() throws {
        let runtime = makeRuntimeDir()
        defer { for d in [runtime, runtime + "-b"] { try? FileManager.default.removeItem(atPath: d) } }
        let r = try finish(launch(["run", "-f", "examples/lm3s6965evb.yaml", "-f", "\(firmware)/lm3s6965evb-firmware.yaml", "--record", runtime + "-b"],
                                  runtime: runtime, environment: ["VTARGET_RECORD_INPUT_GAP": "fast"]))
        #expect(r.code == 2, "\(r.stderr)")
        #expect(r.stderr.contains("VTARGET_RECORD_INPUT_GAP=fast: expected a duration such as 30s"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: runtime + "-b"), "a bundle directory was made")
    }
}
