import Foundation
import Testing
import TestSupport

/// Issue 17: `record: true` on a target under the supervisor. Every run of
/// the instance leaves one bundle in `<state>/bundles/<namespace>/<name>/`,
/// however it ends (stop, a QEMU that dies, delete), and the bundles
/// outlive the instance; `describe`, `get -o json` and `bundle ls` show
/// them, and `replay` of one reproduces the run with its serial input.
@Suite(.serialized) struct SupervisedRecordTests {
    /// The checksum sample (a running CRC-32 of its serial input), recorded.
    static func target(_ f: SupervisorFixture, record: String = "true", extra: String = "") throws -> String {
        let path = f.work + "/cks.yaml"
        try """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: cks}
            spec:
              record: \(record)
              qemuConfig:
                machine: lm3s6965evb
                drives: [{name: firmware, type: pflash, source: {configMap: {name: lm3s6965evb-checksum-firmware}}}]
                devices: [{name: uart0, type: serial}]
              readiness: {device: uart0, pattern: "ready", timeout: 30s}
            \(extra)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func bundles(_ f: SupervisorFixture, _ args: [String] = ["cks"]) throws -> [[String: Any]] {
        let r = try f.vt(["bundle", "ls"] + args + ["-o", "json"])
        #expect(r.code == 0, "\(r.stderr)")
        return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [[String: Any]] ?? []
    }

    static func item(_ f: SupervisorFixture) throws -> [String: Any]? {
        try f.instances().first { f.name($0) == "cks" }
    }

    /// Polls until `done`; false after `seconds`.
    static func eventually(_ seconds: Double = 60, _ done: () throws -> Bool) rethrows -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try done() { return true }
            usleep(200_000)
        }
        return false
    }

    /// One recorded instance through three runs, each ended another way:
    /// `stop` (with serial input typed), QEMU killed, `delete`. Then the
    /// three bundles outlive it, and the first replays byte for byte.
    @Test func eachRunOfARecordedInstanceLeavesABundleThatReplays() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let shelf = f.state + "/bundles/default/cks"
        var r = try f.vt(["apply", "-f", try Self.target(f), "-f", firmware + "/lm3s6965evb-checksum-firmware.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["wait", "cks", "--for", "condition=Ready", "--timeout", "60s"])
        #expect(r.code == 0, "\(r.stderr)")

        // Run 1: two lines typed into the UART (paced, as recorded input is), then `stop`.
        let item = try #require(try Self.item(f))
        let serial = try #require((f.status(item)["endpoints"] as? [String: Any])?["serial"] as? [String: String])
        let socket = try #require(serial["uart0"]).replacingOccurrences(of: "unix://", with: "")
        r = try shell("(printf 'hello\\r\\n'; sleep 0.4; printf 'world\\r\\n'; sleep 1) | timeout 20 socat -u - UNIX-CONNECT:\(socket)", runtime: f.runtime)
        #expect(r.code == 0, "\(r.stderr)")
        var sums: [String] = []
        let answered = try Self.eventually {
            sums = try f.vt(["logs", "cks"]).stdout.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("sum ") }.map(String.init)
            return sums.count == 2
        }
        #expect(answered, "the firmware answered \(sums)")
        r = try f.vt(["stop", "cks"])
        #expect(r.code == 0, "\(r.stderr)")
        var kept = try Self.bundles(f)
        #expect(kept.count == 1, "\(kept)")
        let first = try #require(kept.first?["path"] as? String)
        #expect(first.hasPrefix(shelf + "/") && first.hasSuffix(".vtb"), "\(first)")

        // Where a user finds it: describe and the instance's status.
        r = try f.vt(["describe", "instance", "cks"])
        #expect(r.code == 0 && r.stdout.contains("Recorded runs (vtarget replay PATH; vtarget bundle ls cks):\n  " + first), "\(r.stdout)")
        let recording = try #require(try Self.item(f)).flatMap { f.status($0)["recording"] as? [String: Any] }
        #expect(recording?["bundles"] as? [String] == [first] && recording?["lastBundle"] as? String == first, "\(String(describing: recording))")
        r = try f.vt(["get", "instance", "cks", "-o", "yaml"])
        #expect(r.stdout.contains("recording:") && r.stdout.contains("lastBundle: \(first)"), "\(r.stdout)")

        // What a shim killed while writing would leave: cleared by the next run of the instance, never listed.
        try Data("half a tar".utf8).write(to: URL(fileURLWithPath: shelf + "/cks-half.vtb.partial"))
        try FileManager.default.createDirectory(atPath: shelf + "/.staging/vtarget-record-left", withIntermediateDirectories: true)

        // Run 2: QEMU dies (SIGKILL); restartPolicy Never, so the instance fails, with its bundle.
        r = try f.vt(["start", "cks"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["wait", "cks", "--for", "condition=Ready", "--timeout", "60s"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: shelf + "/cks-half.vtb.partial"))
        #expect(!FileManager.default.fileExists(atPath: shelf + "/.staging/vtarget-record-left"))
        let qemu = try #require(try Self.item(f).flatMap { f.status($0)["qemuPid"] as? Int })
        kill(Int32(qemu), SIGKILL)
        #expect(try Self.eventually { try Self.item(f).map { f.status($0)["phase"] as? String } == "Failed" })
        #expect(try Self.eventually { try Self.bundles(f).count == 2 })

        // Run 3: deleted while it runs; the bundles stay.
        r = try f.vt(["start", "cks"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["wait", "cks", "--for", "condition=Ready", "--timeout", "60s"])
        #expect(r.code == 0, "\(r.stderr)")
        // Leftovers of a killed writer again, now under a running shim: cleared when it ends.
        try Data("half a tar".utf8).write(to: URL(fileURLWithPath: shelf + "/cks-half.vtb.partial"))
        r = try f.vt(["delete", "-f", try Self.target(f)])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: shelf + "/cks-half.vtb.partial"))
        #expect(try f.instances().isEmpty)
        kept = try Self.bundles(f)
        #expect(kept.count == 3, "\(kept)")
        #expect(kept.map { $0["path"] as? String }.first == first, "oldest first: \(kept)")
        #expect(kept.allSatisfy { $0["name"] as? String == "cks" && $0["namespace"] as? String == "default" && ($0["size"] as? Int ?? 0) > 0 })
        #expect(kept.compactMap { $0["exitCode"] as? Int }.count == 3, "each verdict read from its manifest: \(kept)")
        #expect((kept[1]["reason"] as? String ?? "").contains("QEMU"), "the second run's end: \(kept[1])")
        // A QEMU killed by SIGKILL never flushed its replay log: the bundle holds its
        // serial output and verdict (bundle show), but QEMU cannot replay it.
        let crashed = try #require(kept[1]["path"] as? String)
        r = try f.vt(["bundle", "show", crashed])
        #expect(r.code == 0 && r.stdout.contains("checksum sample on lm3s6965evb: ready") && r.stdout.contains("killed by signal 9"), "\(r.stdout)")
        r = try f.vt(["bundle", "ls"])
        #expect(r.code == 0 && r.stdout.hasPrefix("NAME") && r.stdout.contains("CREATED") && r.stdout.contains(first), "\(r.stdout)")
        r = try f.vt(["bundle", "ls", "-A", "-o", "path"])
        #expect(r.stdout.split(separator: "\n").count == 3, "\(r.stdout)")
        r = try f.vt(["bundle", "ls", "nosuch"])
        #expect(r.code == 0 && r.stdout.isEmpty && r.stderr.contains("No bundles kept for instance \"nosuch\""), "\(r.stderr)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: shelf)) ?? []
        #expect(Set(left).subtracting([".staging"]).allSatisfy { $0.hasSuffix(".vtb") }, "\(left)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: shelf + "/.staging")) ?? []).isEmpty)

        // The first run, replayed offline from its bundle: the same bytes, the typed lines' sums included.
        let replay = try f.vt(["replay", first])
        #expect(replay.code == 0, "\(replay.stdout)\n\(replay.stderr)")
        #expect(replay.stderr.contains("uart0: serial output identical"), "\(replay.stderr)")
        #expect(sums.count == 2 && sums.allSatisfy { replay.stdout.contains($0) }, "\(sums) in \(replay.stdout)")
    }

    /// `record: OnFailure`: a run the user stops leaves nothing; one that
    /// fails (its readiness never comes) keeps its bundle, which replays.
    @Test func onFailureKeepsOnlyAFailedRunsBundle() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let shelf = f.state + "/bundles/default/cks"
        var r = try f.vt(["apply", "-f", try Self.target(f, record: "OnFailure"), "-f", firmware + "/lm3s6965evb-checksum-firmware.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["wait", "cks", "--for", "condition=Ready", "--timeout", "60s"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["stop", "cks"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try Self.bundles(f).isEmpty, "a stop is no failure")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: shelf)) ?? []).filter { $0 != ".staging" }.isEmpty)

        // The spec changed (a pattern the firmware never prints): the instance restarts, and fails.
        let failing = try String(contentsOfFile: try Self.target(f, record: "OnFailure"), encoding: .utf8)
            .replacingOccurrences(of: "pattern: \"ready\", timeout: 30s", with: "pattern: \"never printed\", timeout: 2s")
        try failing.write(toFile: f.work + "/failing.yaml", atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", f.work + "/failing.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["start", "cks"])
        #expect(try Self.eventually { try Self.item(f).map { f.status($0)["phase"] as? String } == "Failed" })
        #expect(try Self.eventually { try Self.bundles(f).count == 1 })
        let kept = try Self.bundles(f)
        #expect(kept.first?["exitCode"] as? Int == 1 && (kept.first?["reason"] as? String ?? "").contains("no /never printed/ on uart0"), "\(kept)")
        let path = try #require(kept.first?["path"] as? String)
        let replay = try f.vt(["replay", path])
        #expect(replay.code == 0 && replay.stderr.contains("uart0: serial output identical"), "\(replay.stderr)")
        #expect(replay.stdout.contains("checksum sample on lm3s6965evb: ready"), "\(replay.stdout)")
    }

    /// `vtarget run` of a spec that says `record: true`, with no --record:
    /// recorded into ./vtarget-bundles, as `--record vtarget-bundles` would.
    @Test func runRecordsASpecThatSaysRecord() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let spec = try Self.target(f)
        let r = try finish(launch(["run", "-f", spec, "-f", firmware + "/lm3s6965evb-checksum-firmware.yaml", "--until", "ready", "--timeout", "60s"],
                                  runtime: f.runtime, cwd: f.work, environment: f.environment))
        #expect(r.code == 0, "\(r.stderr)")
        let made = ((try? FileManager.default.contentsOfDirectory(atPath: f.work + "/vtarget-bundles")) ?? []).filter { $0.hasSuffix(".vtb") }
        #expect(made.count == 1, "\(made) \(r.stderr)")
        #expect(r.stderr.contains("vtarget: recorded the run: vtarget-bundles/"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.state + "/bundles"), "a run's bundle is not the supervisor's")
    }

    /// What `run --record` refuses is refused at apply, at the field, with
    /// nothing stored or started.
    @Test func whatCannotBeRecordedIsRefusedAtApply() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let vm = f.work + "/vm.yaml"
        try """
            apiVersion: kubetarget.dev/v1alpha1
            kind: VirtualTargetInstance
            metadata: {name: vm-run}
            spec:
              targetRef: {kind: VirtualMachine, name: testvm}
              record: true
            """.write(toFile: vm, atomically: true, encoding: .utf8)
        let kvm = f.work + "/kvm.yaml"
        try """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: pc-box}
            spec:
              architecture: x86_64
              qemuConfig:
                machine: pc
                accel: kvm
                drives: [{name: fw, type: kernel, source: {configMap: {name: x86-pc-firmware}}}]
            ---
            apiVersion: kubetarget.dev/v1alpha1
            kind: VirtualTargetInstance
            metadata: {name: recorded}
            spec:
              targetRef: {name: pc-box}
              record: true
            """.write(toFile: kvm, atomically: true, encoding: .utf8)
        let pool = try f.poolFile(board: "lm3s6965evb", firmwareMap: "lm3s6965evb-firmware", min: 1, max: 1)
        var text = try String(contentsOfFile: pool, encoding: .utf8)
        text = text.replacingOccurrences(of: "spec:\n  qemuConfig:", with: "spec:\n  record: true\n  qemuConfig:")
        try text.write(toFile: pool, atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["-f", vm], "\(vm):6:11: error: spec.record: VMs are not recorded"),
            (["-f", kvm, "-f", firmware + "/x86-pc-firmware.yaml"],
             "\(kvm):16:11: error: spec.record: QEMU records only under tcg (it counts instructions), and target \"pc-box\" sets spec.qemuConfig.accel: kvm"),
            (["-f", pool, "-f", f.firmwareMap], "\(pool):5:11: error: spec.record: target \"warm\" is VirtualTargetPool \"ci\"'s, and a pool's members are not recorded"),
        ]
        for (args, said) in cases {
            let r = try f.vt(["apply"] + args)
            #expect(r.code == 2, "\(args): \(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains(said), "\(args): \(r.stderr)")
        }
        for kind in ["targets", "instances", "pools", "configmaps"] {
            let stored = try f.vt(["get", kind, "-A", "-o", "name"])
            #expect(stored.code == 0 && stored.stdout.isEmpty, "nothing applied: \(kind): \(stored.stdout) \(stored.stderr)")
        }
        #expect(f.shims().isEmpty && qemuProcesses(mentioning: f.runtime).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: f.state + "/bundles"))
    }
}
