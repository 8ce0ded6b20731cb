import Foundation
import InstanceContract
import Testing
import TargetSpec
import TestSupport

/// What a new user met in the first hour (issue 14), each as they met it:
/// through the CLI, with a supervisor where they had one.
@Suite(.serialized) struct NewUserTests {
    func temporaryFile(_ text: String, _ suffix: String = ".yaml") throws -> String {
        let path = "/tmp/vt-nu-\(UInt32.random(in: 0...UInt32.max))" + suffix
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Issue 14.1: an instance named like a target that runs on its own is
    /// refused by run and apply, naming both resources and their files.
    @Test func anInstanceNamedLikeATargetIsRefusedByRunAndApply() throws {
        let clash = try temporaryFile(nodeTargetYAML(instances: ["node-a"]))
        defer { try? FileManager.default.removeItem(atPath: clash) }
        let runtime = makeRuntimeDir()
        let r = try vt(["run", "-f", "examples/can-pair.yaml", "-f", clash, "-f", "\(firmware)/lm3s6965evb-firmware.yaml",
                        "-f", "\(firmware)/stm32vldiscovery-can-a-firmware.yaml", "-f", "\(firmware)/netduinoplus2-can-b-firmware.yaml"], runtime: runtime)
        #expect(r.code == 2, "\(r.stderr)")
        #expect(r.stderr.contains("\(clash):12:18: error: metadata.name: two instances named \"node-a\" in namespace default: VirtualTargetInstance \"node-a\" (\(clash):12:18)"), "\(r.stderr)")
        #expect(r.stderr.contains("QemuVirtualTarget \"node-a\" (examples/can-pair.yaml:12:9), which no instance names"), "\(r.stderr)")
        expectNothingLeft(runtime)

        let f = SupervisorFixture()
        defer { f.tearDown() }
        var a = try f.vt(["apply", "-f", f.firmwareMap, "-f", f.targets(["node-a"])])
        #expect(a.code == 0, "\(a.stderr)")
        a = try f.vt(["apply", "-f", clash])
        #expect(a.code == 2 && a.stderr.contains("two instances named \"node-a\" in namespace default"), "\(a.code) \(a.stderr)")
        #expect(a.stderr.contains("QemuVirtualTarget \"node-a\"") && a.stderr.contains("VirtualTargetInstance \"node-a\""), "\(a.stderr)")
        let items = try f.instances()
        let target = ((items.first?["spec"] as? [String: Any])?["targetRef"] as? [String: Any])?["name"] as? String
        #expect(items.map(f.name) == ["node-a"] && target == "node-a", "nothing of the refused apply was stored: \(items)")
    }

    /// Issue 14.3 and 14.6: the hints are commands that work; create
    /// configmap stores without --dry-run; delete instance of a target's own
    /// instance says what removes it.
    @Test func hintsWorkAndCreateConfigMapStores() throws {
        let runtime = makeRuntimeDir()
        let work = "/tmp/vt-nu-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }

        // The missing-ConfigMap hint, run as printed (FILE filled in), makes what run needs.
        var r = try vt(["render", "-f", "examples/lm3s6965evb.yaml"], runtime: runtime)
        #expect(r.code == 2)
        let hint = try #require(r.stderr.firstMatch(of: /make it with `([^`]+)`/).map { String($0.1) }, "\(r.stderr)")
        #expect(hint == "vtarget create configmap lm3s6965evb-firmware --from-file=firmware.elf=FILE --dry-run=client -o yaml > lm3s6965evb-firmware.yaml")
        r = try shell("cd \(work) && " + hint.replacingOccurrences(of: "vtarget ", with: vtarget + " ").replacingOccurrences(of: "FILE", with: "\(firmware)/lm3s6965evb.elf"), runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        r = try vt(["render", "-f", "examples/lm3s6965evb.yaml", "-f", work + "/lm3s6965evb-firmware.yaml"], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")

        // A bare --dry-run is kubectl's deprecated spelling of client.
        r = try vt(["create", "configmap", "fw", "--from-file=\(firmware)/lm3s6965evb.elf", "--dry-run", "-o", "yaml"], runtime: runtime)
        #expect(r.code == 0 && r.stdout.hasPrefix("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fw\nbinaryData:\n  lm3s6965evb.elf: f0VMRg"), "\(r.stdout) \(r.stderr)")
        #expect(r.stderr == "warning: --dry-run is deprecated and can be replaced with --dry-run=client.\n")
        r = try vt(["create", "configmap", "fw", "--from-file=\(firmware)/lm3s6965evb.elf", "--dry-run=server"], runtime: runtime)
        #expect(r.code == 2 && r.stderr.contains("valid: client, none"), "\(r.stderr)")
        expectNothingLeft(runtime)

        let f = SupervisorFixture()
        defer { f.tearDown() }
        r = try f.vt(["create", "configmap", "lm3s6965evb-firmware", "--from-file=firmware.elf=\(firmware)/lm3s6965evb.elf"])
        #expect(r.code == 0 && r.stdout == "configmap/lm3s6965evb-firmware created\n", "\(r.stdout) \(r.stderr)")
        r = try f.vt(["create", "configmap", "lm3s6965evb-firmware", "--from-file=firmware.elf=\(firmware)/lm3s6965evb.elf"])
        #expect(r.code == 1 && r.stderr.contains("configmaps \"lm3s6965evb-firmware\" already exists"), "\(r.stderr)")
        r = try f.vt(["apply", "-f", "examples/lm3s6965evb.yaml"])
        #expect(r.code == 0, "the stored ConfigMap serves the target: \(r.stderr)")
        try f.waitFor("lm3s6965evb Ready", f.allReady(1))

        // The "still needed" refusal carries the same working hint.
        r = try f.vt(["delete", "configmap", "lm3s6965evb-firmware"])
        #expect(r.code != 0 && r.stderr.contains("still needed") && r.stderr.contains("--dry-run=client -o yaml > lm3s6965evb-firmware.yaml"), "\(r.stderr)")

        r = try f.vt(["delete", "instance", "lm3s6965evb"])
        #expect(r.code == 1, "as kubectl's not-found")
        #expect(r.stderr.contains("instance \"lm3s6965evb\" is target \"lm3s6965evb\"'s own instance, not a VirtualTargetInstance")
                && r.stderr.contains("(vtarget delete target lm3s6965evb)") && r.stderr.contains("(vtarget stop lm3s6965evb)"), "\(r.stderr)")
        r = try f.vt(["delete", "instance", "nosuch"])
        #expect(r.code == 1 && r.stderr.contains("not found"), "\(r.stderr)")
    }

    /// Issue 14.10: an -o a command does not have is exit 2 with the ones it has.
    @Test func outputFormatsAreChecked() throws {
        let runtime = makeRuntimeDir()
        for (args, choices) in [(["events", "-o", "yaml"], "'table' and 'json'"), (["events", "-o", "foo"], "'table' and 'json'"),
                                (["daemon", "status", "-o", "foo"], "'text' and 'json'"), (["claim", "p", "-o", "foo"], "'name' and 'json'"),
                                (["machines", "-o", "json"], "'table', 'wide' or 'name'"), (["get", "machineprofiles", "-o", "yaml"], "table, wide or name"),
                                (["get", "instances", "-o", "foo"], "wide, yaml, json or name"),
                                (["create", "configmap", "x", "--from-file=README.md", "--dry-run=client", "-o", "xml"], "'yaml', 'json' or 'name'")] {
            let r = try vt(args, runtime: runtime)
            #expect(r.code == 2 && r.stderr.contains(choices), "\(args): \(r.code) \(r.stderr)")
        }
        expectNothingLeft(runtime)
    }

    /// Issue 14.13: durations far beyond a year were converted to integers
    /// that trapped (the shim died of SIGILL, run exited 132, leaving run-PID).
    @Test func durationsBeyondAYearAreBadInput() throws {
        let runtime = makeRuntimeDir()
        let files = ["-f", "examples/lm3s6965evb.yaml", "-f", "\(firmware)/lm3s6965evb-firmware.yaml"]
        for flag in ["--timeout", "--ttl"] {
            let r = try vt(["run"] + files + [flag, "99999999999999999999999h"], runtime: runtime)
            #expect(r.code == 2 && r.stderr.contains("\(flag): expected a duration such as 30s, 15m, 1h30m or 500ms, at most 8760h (a year), got 99999999999999999999999h"), "\(r.code) \(r.stderr)")
        }
        var r = try vt(["claim", "pool", "--ttl", "9000h"], runtime: runtime)
        #expect(r.code == 2 && r.stderr.contains("--ttl: 9000h is above the maximum of 8760h (a year)"), "\(r.stderr)")
        r = try vt(["can", "dump", "vehicle", "--timeout", "99999999999999999999h"], runtime: runtime)
        #expect(r.code == 2 && r.stderr.contains("is above the maximum of 8760h"), "\(r.stderr)")
        let yaml = try String(contentsOfFile: repoRoot + "/examples/lm3s6965evb.yaml", encoding: .utf8)
            .replacingOccurrences(of: "  ttl: 30m\n", with: "  ttl: 99999999999999999999999h\n")
        let file = try temporaryFile(yaml)
        defer { try? FileManager.default.removeItem(atPath: file) }
        r = try vt(["run", "-f", file, "-f", "\(firmware)/lm3s6965evb-firmware.yaml"], runtime: runtime)
        #expect(r.code == 2 && r.stderr.contains("\(file):22:8: error: spec.ttl: 99999999999999999999999h is above the maximum of 8760h (a year)"), "\(r.stderr)")
        expectNothingLeft(runtime)
    }

    /// Issue 14.14: the decoder's reserved device names cover every name an
    /// instance's directory (InstanceLayout) gives its own files.
    @Test func reservedDeviceNamesCoverTheInstanceDirectory() {
        let layout = InstanceLayout(directory: "/r/i")
        let own = [layout.qmpSocket, layout.recordFile, layout.logDirectory, layout.qemuDirectory]
        for path in own {
            let stem = String(path.dropFirst(layout.directory.count + 1).prefix { $0 != "." })
            #expect(ResourceDecoder.isReservedDeviceName(stem), "\(path): a device named \(stem) would sit beside it")
        }
        // A device's log is logs/NAME.log, a sidecar's logs/sidecar-NAME.log.
        let sidecarLog = layout.sidecarLog("agent")
        let deviceName = String(sidecarLog.dropFirst(layout.logDirectory.count + 1).dropLast(".log".count))
        #expect(ResourceDecoder.isReservedDeviceName(deviceName), "device \(deviceName) would log to \(sidecarLog)")
        // Ordinary names are free, and their sockets never meet the instance's own files.
        for name in ["uart0", "console", "can0", "force", "sock"] {
            #expect(!ResourceDecoder.isReservedDeviceName(name))
            #expect(Set(layout.sockets(devices: [name]).dropFirst()).isDisjoint(with: own + [layout.qmpSocket]))
        }
    }

    /// Issue 14.9: an unknown --member is refused with the members; --delay
    /// 0s removes a delay; the output says what was set.
    @Test func canFaultChecksMembersAndTakesZeroDelay() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let log = "/tmp/vt-nu-fault-\(UInt32.random(in: 0...UInt32.max)).txt"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let script = """
            \(vtarget) can fault vehicle --member nosuch/can0 --drop 1 >>\(log) 2>&1; echo "rc=$?" >>\(log)
            \(vtarget) can fault vehicle --member node-a/can0 --delay 5ms >>\(log) 2>&1; echo "rc=$?" >>\(log)
            \(vtarget) can fault vehicle --member node-a/can0 --delay 0s >>\(log) 2>&1; echo "rc=$?" >>\(log)
            """
        let r = try vt(["run", "-f", "examples/can-pair.yaml", "-f", "\(firmware)/stm32vldiscovery-can-a-firmware.yaml",
                        "-f", "\(firmware)/netduinoplus2-can-b-firmware.yaml", "--timeout", "60s", "--", "sh", "-c", script], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        let out = try String(contentsOfFile: log, encoding: .utf8)
        let runs = out.components(separatedBy: "rc=")
        #expect(runs.count == 4, "\(out)")
        guard runs.count == 4 else { return }
        #expect(runs[0].contains("error: --member: no member \"nosuch/can0\" on bus vehicle; valid: \"node-a/can0\", \"node-b/can0\""), "\(out)")
        #expect(runs[1].hasPrefix("2\n"), "refused as bad input: \(out)")
        #expect(runs[1].contains("member node-a/can0: delay=5ms (settings not given keep their values)") && runs[1].contains("node-a/can0:sent="), "\(out)")
        #expect(runs[2].hasPrefix("0\n") && runs[2].contains("member node-a/can0: delay=0ms"), "\(out)")
        #expect(runs[3].hasPrefix("0"), "\(out)")
    }

    /// Issue 14.12: what the docs said that was no longer true.
    @Test func docsSayWhatIsTrue() throws {
        let readme = try String(contentsOfFile: repoRoot + "/README.md", encoding: .utf8)
        #expect(!readme.contains("buses shared between"), "buses are shared between separate runs (CANBusTests.twoRunsShareABusByName)")
        #expect(!readme.contains("no boot probe"), "machines reports the KVM boot probe's verdict")
        #expect(readme.contains("as root it and the directories above it are 0711"))
        let runtime = makeRuntimeDir()
        let help = try vt(["render", "--help"], runtime: runtime)
        #expect(help.stdout.contains("FIFO pair") && !help.stdout.contains("then one per UART"), "\(help.stdout)")
        let machines = try vt(["machines"], runtime: runtime)
        #expect(machines.stdout.contains("\nKVM: "), "the probe's verdict: \(machines.stdout)")
    }
}
