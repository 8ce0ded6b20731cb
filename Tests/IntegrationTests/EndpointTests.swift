import Foundation
import HostOS
import TargetRuntime
import TestSupport
import Testing

let python = repoRoot + "/.venv/bin/python"
let clients = repoRoot + "/Tests/IntegrationTests/Clients"

/// Serial and QMP endpoints shared by many real clients: qemu.qmp, sockets,
/// and vtarget's own verbs from other processes.
@Suite(.serialized) struct EndpointTests {
    @Test func venvHasTheRealClients() {
        #expect(FileManager.default.isExecutableFile(atPath: python), "run scripts/setup.sh: it makes .venv with qemu.qmp, python-can, pyserial")
    }

    func runChecks(_ script: String, _ args: [String] = [], env: [String: String] = [:], board: String = "lm3s6965evb") throws -> RunResult {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        for (k, v) in env { setenv(k, v, 1) }
        defer { for k in env.keys { unsetenv(k) } }
        return try vt(["run"] + exampleArgs(board) + ["--timeout", "180s", "--", python, clients + "/" + script] + args, runtime: runtime)
    }

    @Test func twoQMPClientsAndOneSendingGarbage() throws {
        let r = try runChecks("qmp_two_clients.py")
        #expect(r.code == 0, "\(r.stderr)")
    }

    @Test(arguments: ["writers", "binary", "fds", "slow", "fanout"])
    func serialPort(_ mode: String) throws {
        let r = try runChecks("serial_checks.py", [mode])
        #expect(r.code == 0, "\(mode): \(r.stderr)")
        if mode == "slow" { #expect(r.stderr.contains("dropped a client that stopped reading")) }
    }

    @Test func pyserialOverRFC2217() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let r = try vt(["run", "-f", "examples/lm3s6965evb-rfc2217.yaml", "-f", "\(firmware)/lm3s6965evb-firmware.yaml",
                        "--timeout", "60s", "--", python, clients + "/pyserial_rfc2217.py"], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
    }

    /// Issue 14.5: the command the example documents, taken from its
    /// comment and run as written (`python` the venv's), in a terminal as
    /// miniterm wants: it reaches the UART over RFC 2217 (ping, pong) and
    /// Ctrl-] ends it, and with it the run, with 0.
    @Test func theRFC2217ExampleCommandWorksAsDocumented() throws {
        let yaml = try String(contentsOfFile: repoRoot + "/examples/lm3s6965evb-rfc2217.yaml", encoding: .utf8)
        var command = ""
        for line in yaml.split(separator: "\n").map({ $0.drop(while: { $0 == "#" || $0 == " " }) }) {
            if command.isEmpty && !line.hasPrefix("vtarget run") { continue }
            command += line.hasSuffix("\\") ? line.dropLast() : line
            if !line.hasSuffix("\\") { break }
        }
        #expect(command.contains("'python -m serial.tools.miniterm \"rfc2217://$VTARGET_SERIAL_UART0_RFC2217\"'"), "\(command)")
        let run = vtarget + command.dropFirst("vtarget".count)
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let quoted = "'" + run.replacingOccurrences(of: "'", with: "'\\''") + "'"
        let r = try shell("""
            export PATH=\(repoRoot)/.venv/bin:$PATH; cd \(repoRoot)
            (sleep 8; printf 'ping\\r'; sleep 3; printf '\\035') | timeout 90 script -qec \(quoted) /dev/null
            """, runtime: runtime)
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("Miniterm on rfc2217://127.0.0.1:") && r.stdout.contains("pong"), "\(r.stdout)")
    }

    @Test func logRotationUnderAStreamLosesNothing() throws {
        let r = try runChecks("serial_checks.py", ["rotation"], env: ["VTARGET_LOG_MAX_BYTES": "64Ki", "VTARGET_LOG_FILES": "100"])
        #expect(r.code == 0, "\(r.stderr)")
    }

    @Test func qemuKilledUnderAQMPClientFailsItsCommands() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let (p, _, err) = try launch(["run"] + exampleArgs("lm3s6965evb"), runtime: runtime)
        let ready = try vt(["wait", "lm3s6965evb", "--for", "condition=Ready", "--timeout", "30s"], runtime: runtime)
        #expect(ready.code == 0, "\(ready.stderr)")
        let dir = try #require(try FileManager.default.contentsOfDirectory(atPath: runtime).first { $0.hasPrefix("run-") })
        let script = Process()
        script.executableURL = URL(fileURLWithPath: python)
        script.arguments = [clients + "/qmp_killed.py"]
        script.environment = ["VTARGET_QMP": "\(runtime)/\(dir)/lm3s6965evb/qmp.sock", "PATH": "/usr/bin:/bin"]
        let out = Pipe()
        script.standardOutput = out
        script.standardError = out
        try script.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        script.waitUntilExit()
        #expect(script.terminationStatus == 0, "\(text)")
        p.waitUntilExit()
        #expect(p.terminationStatus == 1, "a run whose QEMU dies fails")
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(stderr.contains("QEMU exited unexpectedly"))
    }

    /// Issue 14 item 7: two runs of one file share the instance's name and
    /// namespace; `--run PID` picks one, and the error lists the choices.
    @Test func twoRunsOfOneFileArePickedByRun() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let (a, _, _) = try launch(["run"] + exampleArgs("lm3s6965evb") + ["--timeout", "60s"], runtime: runtime)
        defer { if a.isRunning { a.terminate() }; a.waitUntilExit() }
        let (b, _, _) = try launch(["run"] + exampleArgs("lm3s6965evb") + ["--timeout", "60s"], runtime: runtime)
        defer { if b.isRunning { b.terminate() }; b.waitUntilExit() }
        for p in [a, b] {
            let ready = try vt(["wait", "lm3s6965evb", "--run", "\(p.processIdentifier)", "--for", "condition=Ready", "--timeout", "30s"], runtime: runtime)
            #expect(ready.code == 0, "\(ready.stderr)")
        }
        let ambiguous = try vt(["qmp", "lm3s6965evb", "query-status"], runtime: runtime)
        #expect(ambiguous.code == 1)
        #expect(ambiguous.stderr.contains("--run PID"), "\(ambiguous.stderr)")
        #expect(ambiguous.stderr.contains("\(a.processIdentifier) (namespace default") && ambiguous.stderr.contains("\(b.processIdentifier) (namespace default"), "\(ambiguous.stderr)")
        let picked = try vt(["qmp", "lm3s6965evb", "--run", "\(b.processIdentifier)", "query-status"], runtime: runtime)
        #expect(picked.code == 0 && picked.stdout.contains("\"status\":\"running\""), "\(picked.stderr)")
        let logs = try vt(["logs", "lm3s6965evb", "--run", "\(a.processIdentifier)"], runtime: runtime)
        #expect(logs.code == 0, "\(logs.stderr)")
        // A Cortex-M board has no power button: vtarget's soft-reboot command (what `soft-reboot`
        // sends a VM without a guest agent) says so, and names what would work.
        let reboot = try vt(["qmp", "lm3s6965evb", "--run", "\(a.processIdentifier)", "__dev.vtarget_soft-reboot"], runtime: runtime)
        #expect(reboot.code == 1 && reboot.stderr.contains("neither a guest agent nor a power button") && reboot.stderr.contains("vtarget reset"),
                "\(reboot.code) \(reboot.stderr)")
        let wrong = try vt(["qmp", "lm3s6965evb", "--run", "1", "query-status"], runtime: runtime)
        #expect(wrong.code == 1 && wrong.stderr.contains("no run 1 has an instance") && wrong.stderr.contains("\(a.processIdentifier) (namespace"), "\(wrong.stderr)")
        let stop = try vt(["stop", "lm3s6965evb", "--run", "\(a.processIdentifier)", "--timeout", "1s"], runtime: runtime)
        #expect(stop.code == 0, "\(stop.stderr)")
        a.waitUntilExit()
        #expect(b.isRunning, "stopping one run left the other")
    }

    /// Issue 14 item 22: removing a running instance's runtime directory ends
    /// the run as failed, with the reason, instead of leaving it "Running" with
    /// dead endpoints.
    @Test func removedRuntimeDirectoryEndsTheRun() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let (p, _, err) = try launch(["run"] + exampleArgs("lm3s6965evb") + ["--timeout", "60s"], runtime: runtime)
        defer { if p.isRunning { p.terminate() }; p.waitUntilExit() }
        let ready = try vt(["wait", "lm3s6965evb", "--for", "condition=Ready", "--timeout", "30s"], runtime: runtime)
        #expect(ready.code == 0, "\(ready.stderr)")
        let run = try #require(try FileManager.default.contentsOfDirectory(atPath: runtime).first { $0.hasPrefix("run-") })
        try FileManager.default.removeItem(atPath: "\(runtime)/\(run)/lm3s6965evb")
        let deadline = Date().addingTimeInterval(10)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        #expect(!p.isRunning, "the run noticed within 10 s")
        p.waitUntilExit()
        #expect(p.terminationStatus == 1)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(stderr.contains("runtime directory \(runtime)/\(run)/lm3s6965evb was removed"), "\(stderr)")
    }

    /// The verbs of the contract against a running instance, from other processes.
    @Test func instanceVerbs() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let (p, _, _) = try launch(["run"] + exampleArgs("x86-pc"), runtime: runtime)
        defer { if p.isRunning { p.terminate() }; p.waitUntilExit() }
        #expect(try vt(["wait", "x86-pc", "--for", "condition=Ready", "--timeout", "30s"], runtime: runtime).code == 0)
        #expect(try vt(["wait", "x86-pc", "--for", "serial=echo ready", "--since-start", "--timeout", "5s"], runtime: runtime).code == 0)
        let missed = try vt(["wait", "x86-pc", "--for", "serial=echo ready", "--timeout", "1s"], runtime: runtime)
        #expect(missed.code == 1, "output before the call does not count without --since-start")
        #expect(missed.stderr.contains("no match"))

        let status = try vt(["qmp", "x86-pc", "query-status"], runtime: runtime)
        #expect(status.stdout.contains("\"status\":\"running\""), "\(status.stdout) \(status.stderr)")
        // issue 14 item 8: the verbs say what they did, as kubectl's do.
        let paused = try vt(["pause", "x86-pc"], runtime: runtime)
        #expect(paused.code == 0 && paused.stdout.hasSuffix("/x86-pc paused\n"), "\(paused.stdout) \(paused.stderr)")
        #expect(try vt(["qmp", "x86-pc", "{\"execute\": \"query-status\"}"], runtime: runtime).stdout.contains("\"status\":\"paused\""))
        #expect(try vt(["hmp", "x86-pc", "info status"], runtime: runtime).stdout.contains("paused"))
        let resumed = try vt(["resume", "x86-pc"], runtime: runtime)
        #expect(resumed.code == 0 && resumed.stdout.hasSuffix("/x86-pc resumed\n"), "\(resumed.stdout)")
        let bad = try vt(["qmp", "x86-pc", "no-such-command"], runtime: runtime)
        #expect(bad.code == 1 && bad.stderr.contains("CommandNotFound"))

        // wait for output that arrives after the call, produced by a writer.
        let waiter = try launch(["wait", "x86-pc", "--for", "serial=marker-4711", "--timeout", "10s"], runtime: runtime)
        usleep(300_000)
        let dir = try #require(try FileManager.default.contentsOfDirectory(atPath: runtime).first { $0.hasPrefix("run-") })
        let fd = try FileDescriptors.connectUnix("\(runtime)/\(dir)/x86-pc/com1.sock")
        _ = "marker-4711".withCString { write(fd, $0, 11) }
        waiter.0.waitUntilExit()
        close(fd)
        #expect(waiter.0.terminationStatus == 0)

        let logs = try vt(["logs", "x86-pc"], runtime: runtime)
        #expect(logs.stdout.hasPrefix("hello from x86 pc"))
        #expect(logs.stdout.contains("marker-4711"))
        let stamped = try vt(["logs", "x86-pc", "--timestamps"], runtime: runtime)
        #expect(stamped.stdout.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \d+\.\d{6} hello from x86 pc"#, options: .regularExpression) != nil)

        // console: keystrokes reach the UART, Ctrl-] (0x1d) detaches; --read-only sends nothing.
        let console = try shell("(printf 'hi-console'; sleep 1; printf '\\035') | \(vtarget) console x86-pc", runtime: runtime)
        #expect(console.code == 0, "\(console.stderr)")
        #expect(console.stdout.contains("hi-console"), "the echo came back through the console: \(console.stdout.suffix(200))")
        let watcher = try shell("(printf 'read-only-typing'; sleep 1; printf '\\035') | \(vtarget) console x86-pc --read-only", runtime: runtime)
        #expect(watcher.code == 0)
        #expect(!watcher.stdout.contains("read-only-typing"), "a read-only console sent keystrokes")

        let stop = try vt(["stop", "x86-pc", "--timeout", "1s"], runtime: runtime)
        #expect(stop.code == 0, "\(stop.stderr)")
        #expect(stop.stdout.hasSuffix("/x86-pc stopped\n"), "\(stop.stdout)")
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "a run whose target was stopped on purpose succeeds")
        let gone = try vt(["qmp", "x86-pc", "query-status"], runtime: runtime)
        #expect(gone.code == 1 && gone.stderr.contains("no running instance"))
    }
}


/// Bus hosts (`vtarget can serve`) of the runtime directory, after up to 2 s for them to end.
func busHosts(_ runtime: String) -> [Int32] {
    var left: [Int32] = []
    for _ in 0..<20 {
        left = processes { $0.contains("can\0serve\0") }.filter { pid in
            let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ").map { String(decoding: $0, as: UTF8.self) } ?? ""
            return env.contains("VTARGET_RUNTIME_DIR=\(runtime)\0")
        }
        if left.isEmpty { break }
        usleep(100_000)
    }
    return left
}

/// CAN: two firmware targets (can-pair) and python-can clients on one bus.
@Suite(.serialized) struct CANBusTests {
    @Test func pairAndPythonCanClientsShareTheBus() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        setenv("VT", vtarget, 1)
        defer { unsetenv("VT") }
        let r = try vt(["run", "-f", "examples/can-pair.yaml",
                        "-f", "\(firmware)/stm32vldiscovery-can-a-firmware.yaml",
                        "-f", "\(firmware)/netduinoplus2-can-b-firmware.yaml",
                        "--timeout", "150s", "--", python, clients + "/can_bus.py"], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr.suffix(3000))")
        #expect(r.stdout.contains("node-b/console| can rx 100"), "node B heard node A")
        #expect(r.stdout.contains("node-a/console| can rx 101"), "node A heard node B's answers")
    }

    /// A bus is the machine's, not a run's: node A and node B in two separate
    /// `vtarget run`s hear each other; the bus host ends with the last of them.
    @Test func twoRunsShareABusByName() throws {
        let pair = try String(contentsOfFile: repoRoot + "/examples/can-pair.yaml", encoding: .utf8)
        let docs = pair.components(separatedBy: "\n---\n")
        #expect(docs.count == 2)
        let dir = "/tmp/vt-bus-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try docs[0].write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        try docs[1].write(toFile: dir + "/b.yaml", atomically: true, encoding: .utf8)
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let a = try launch(["run", "-f", dir + "/a.yaml", "-f", "\(firmware)/stm32vldiscovery-can-a-firmware.yaml", "--timeout", "60s"],
                           runtime: runtime)
        let b = try vt(["run", "-f", dir + "/b.yaml", "-f", "\(firmware)/netduinoplus2-can-b-firmware.yaml",
                        "--until", "can rx 100", "--timeout", "30s"], runtime: runtime)
        #expect(b.code == 0, "node B, in a run of its own, heard node A: \(b.stderr)")
        let dump = try vt(["can", "dump", "vehicle", "--count", "2", "--timeout", "10s"], runtime: runtime)
        #expect(dump.stdout.contains("  vehicle  100        [1]  "), "the bus outlived node B's run: \(dump.stdout) \(dump.stderr)")
        // Node B's answer may still be on its way to node A when B's run ends: A's output is read until it comes.
        let heard = readUntil(a.1, "can rx 101", seconds: 30)
        a.0.interrupt()
        let ra = finish(a)
        #expect((heard + ra.stdout).contains("can rx 101"), "node A heard node B's answers: \(heard + ra.stdout)")
        #expect(!FileManager.default.fileExists(atPath: runtime + "/bus-vehicle"), "the bus took its files down with its last target")
        #expect(busHosts(runtime).isEmpty, "the bus host ended with its last target")
        let gone = try vt(["can", "dump", "vehicle", "--count", "1"], runtime: runtime)
        #expect(gone.code == 1 && gone.stderr.contains("no CAN bus \"vehicle\" is running"), "\(gone.stderr)")
    }

    /// A bus host killed under running targets: they start a new one and rejoin.
    @Test func aKilledBusHostIsReplacedAndItsTargetsRejoin() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let run = try launch(["run", "-f", "examples/can-pair.yaml", "-f", "\(firmware)/stm32vldiscovery-can-a-firmware.yaml",
                              "-f", "\(firmware)/netduinoplus2-can-b-firmware.yaml", "--timeout", "60s"], runtime: runtime)
        func host() -> Int32? {
            guard let data = FileManager.default.contents(atPath: runtime + "/bus-vehicle/bus.json"),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let pid = object["ownerPID"] as? Int, kill(Int32(pid), 0) == 0 else { return nil }
            return Int32(pid)
        }
        var first: Int32?
        for _ in 0..<200 where first == nil { first = host(); usleep(50_000) }
        let killed = try #require(first)
        // Both nodes on the bus before the kill: they join beside their QEMUs' start, not before it.
        let before = try vt(["can", "dump", "vehicle", "--count", "4", "--timeout", "20s"], runtime: runtime)
        #expect(before.stdout.contains("  vehicle  101        [1]  "), "node B answers node A: \(before.stdout) \(before.stderr)")
        kill(killed, SIGKILL)
        var second: Int32?
        for _ in 0..<200 where second == nil { second = host().flatMap { $0 == killed ? nil : $0 }; usleep(50_000) }
        #expect(second != nil, "a new bus host")
        let dump = try vt(["can", "dump", "vehicle", "--count", "8", "--timeout", "10s"], runtime: runtime)
        #expect(dump.stdout.contains("  vehicle  100        [1]  ") && dump.stdout.contains("  vehicle  101        [1]  "),
                "both nodes back on the bus: \(dump.stdout) \(dump.stderr)")
        run.0.interrupt()
        let r = finish(run)
        #expect(r.stderr.contains("node-a/can0: the CAN bus host went away; rejoining") && r.stderr.contains("node-a/can0: back on the bus"),
                "\(r.stderr.prefix(4000))")
        #expect(busHosts(runtime).isEmpty)
    }

    /// Faults from YAML: node A's frames are all dropped, so node B never hears it.
    @Test func faultsFromYAML() throws {
        let pair = try String(contentsOfFile: repoRoot + "/examples/can-pair.yaml", encoding: .utf8)
        let yaml = pair.replacingOccurrences(of: "- {name: can0, type: can, bus: vehicle, uart: 1}\n  readiness: {device: console, pattern: \"slcan node 1\"",
                                             with: "- {name: can0, type: can, bus: vehicle, uart: 1, faults: {drop: 1}}\n  readiness: {device: console, pattern: \"slcan node 1\"")
        #expect(yaml != pair)
        let file = "/tmp/vt-faults-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let r = try vt(["run", "-f", file, "-f", "\(firmware)/stm32vldiscovery-can-a-firmware.yaml",
                        "-f", "\(firmware)/netduinoplus2-can-b-firmware.yaml",
                        "--timeout", "60s", "--", "sh", "-c", "sleep 1.5; \(vtarget) can fault vehicle"], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("can rx 100"), "node B heard node A through drop=1")
        // The counters share stdout with the serial stream, so they may sit mid-line.
        let match = r.stdout.firstMatch(of: /node-a\/can0:sent=\d+,received=\d+,malformed=\d+,dropped=(\d+)/)
        let dropped = match.flatMap { Int($0.1) } ?? 0
        #expect(dropped >= 5, "node A counted frames as dropped: \(match.map { String($0.0) } ?? r.stdout.suffix(500).description)")
        // issue 14 item 9: the faults in force are shown.
        #expect(r.stdout.contains("active faults:") && r.stdout.contains("  node-a/can0: drop=1.0"), "\(r.stdout.suffix(500))")
    }

    @Test func dumpAndSendFromOtherProcesses() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let r = try vt(["run", "-f", "examples/can-pair.yaml",
                        "-f", "\(firmware)/stm32vldiscovery-can-a-firmware.yaml",
                        "-f", "\(firmware)/netduinoplus2-can-b-firmware.yaml",
                        "--timeout", "60s", "--", "sh", "-c", "sleep 0.5; for i in 1 2 3 4 5; do \(vtarget) can send vehicle 7FF#C0FFEE; sleep 0.2; done & \(vtarget) can dump vehicle --count 40 --timeout 10s"], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("  vehicle  7FF        [3]  C0 FF EE"), "can send's frame in can dump's output")
        #expect(r.stdout.contains("  vehicle  100        [1]  "), "node A's counter in can dump's output")
        let bad = try vt(["can", "send", "vehicle", "800#00"], runtime: runtime)
        #expect(bad.code == 2 && bad.stderr.contains("standard ids go up to 7FF"))
    }
}

/// Declarative tests in the spec and the JUnit report of `vtarget run --junit`.
@Suite(.serialized) struct DeclarativeTestsAndJUnit {
    func junit(_ path: String, failures: Int, names: [String]) throws -> RunResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [clients + "/junit_check.py", path, "\(failures)"] + names
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return RunResult(code: p.terminationStatus, stdout: text, stderr: "")
    }

    @Test func passingTestsWriteAPassingReport() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let report = runtime + ".xml"
        defer { try? FileManager.default.removeItem(atPath: report) }
        let r = try vt(["run", "-f", "examples/lm3s6965evb-tests.yaml", "-f", "\(firmware)/lm3s6965evb-firmware.yaml",
                        "--timeout", "30s", "--junit", report], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        let check = try junit(report, failures: 0, names: ["boot", "readiness", "ping answers pong", "echo comes back"])
        #expect(check.code == 0, "\(check.stdout)")
    }

    @Test func aFailingTestFailsTheRunAndCarriesTheSerialLog() throws {
        let text = try String(contentsOfFile: repoRoot + "/examples/lm3s6965evb-tests.yaml", encoding: .utf8)
            .replacingOccurrences(of: "expect: \"pong\"", with: "expect: \"never-printed\"")
        let file = "/tmp/vt-failing-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let report = runtime + ".xml"
        defer { try? FileManager.default.removeItem(atPath: report) }
        let r = try vt(["run", "-f", file, "-f", "\(firmware)/lm3s6965evb-firmware.yaml", "--timeout", "30s", "--junit", report], runtime: runtime)
        #expect(r.code == 1)
        #expect(r.stderr.contains("test ping answers pong failed: no /never-printed/ on uart0 within 2s"))
        let check = try junit(report, failures: 1, names: ["ping answers pong", "echo comes back"])
        #expect(check.code == 0, "\(check.stdout)")
        let xml = try String(contentsOfFile: report, encoding: .utf8)
        #expect(xml.contains("<system-out>hello from lm3s6965evb"), "the serial log is attached to the failure")
    }

    @Test func testSidecarsDecideTheRun() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let report = runtime + ".xml"
        defer { try? FileManager.default.removeItem(atPath: report) }
        let pass = try vt(["run", "-f", "examples/lm3s6965evb-sidecars.yaml", "-f", "\(firmware)/lm3s6965evb-firmware.yaml",
                           "--timeout", "30s", "--junit", report], runtime: runtime)
        #expect(pass.code == 0, "\(pass.stderr)")
        #expect(pass.stderr.contains("test sidecar ping-test passed"))
        #expect(try junit(report, failures: 0, names: ["boot", "readiness", "sidecar ping-test"]).code == 0)
        // A passing test sidecar's output is in the report too (its system-out).
        let xml = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
        #expect(xml.contains("pong from lm3s6965evb at level 2"), "\(xml)")

        // Its output is kept: a command running beside it reads it with logs --sidecar.
        let logs = try vt(["run", "-f", "examples/lm3s6965evb-sidecars.yaml", "-f", "\(firmware)/lm3s6965evb-firmware.yaml",
                           "--timeout", "30s", "--", "sh", "-c", "sleep 3; \(vtarget) logs lm3s6965evb --sidecar ping-test"], runtime: runtime)
        #expect(logs.stdout.contains("pong from lm3s6965evb at level 2"), "\(logs.stdout.suffix(300)) \(logs.stderr)")

        let failing = try String(contentsOfFile: repoRoot + "/examples/lm3s6965evb-sidecars.yaml", encoding: .utf8)
            .replacingOccurrences(of: "grep -q pong &&", with: "grep -q never-printed &&")
        let file = "/tmp/vt-sidecar-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try failing.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fail = try vt(["run", "-f", file, "-f", "\(firmware)/lm3s6965evb-firmware.yaml", "--timeout", "30s", "--junit", report], runtime: runtime)
        #expect(fail.code == 1)
        #expect(fail.stderr.contains("test sidecar ping-test failed"))
        #expect(try junit(report, failures: 1, names: ["sidecar ping-test"]).code == 0)
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }

    /// Issue 14 item 4: a Python sidecar's output reaches its log while it runs
    /// (its stdout is a file, so Python would block-buffer it without PYTHONUNBUFFERED).
    @Test func sidecarOutputIsReadableWhileItRuns() throws {
        let yaml = try String(contentsOfFile: repoRoot + "/examples/lm3s6965evb-sidecars.yaml", encoding: .utf8)
            .replacingOccurrences(of: #"command: ["sleep", "600"]"#,
                                  with: #"command: ["python3", "-c", "import time; print('talker line one'); time.sleep(60)"]"#)
        #expect(yaml.contains("talker line one"))
        let file = "/tmp/vt-talker-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        // Not inherited from this process's environment (CI images often set it).
        let inherited = ProcessInfo.processInfo.environment["PYTHONUNBUFFERED"]
        unsetenv("PYTHONUNBUFFERED")
        defer { if let inherited { setenv("PYTHONUNBUFFERED", inherited, 1) } }
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let r = try vt(["run", "-f", file, "-f", "\(firmware)/lm3s6965evb-firmware.yaml", "--timeout", "30s",
                        "--", "sh", "-c", "sleep 3; \(vtarget) logs lm3s6965evb --sidecar watcher"], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("talker line one"), "\(r.stdout.suffix(300)) \(r.stderr)")
    }

    @Test func commandAndTimeoutAreTestcasesToo() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let report = runtime + ".xml"
        defer { try? FileManager.default.removeItem(atPath: report) }
        let r = try vt(["run"] + exampleArgs("mps2-an385") + ["--timeout", "30s", "--junit", report, "--", "sh", "-c", "exit 3"], runtime: runtime)
        #expect(r.code == 3)
        #expect(try junit(report, failures: 1, names: ["boot", "readiness", "sh -c exit 3"]).code == 0)
        let t = try vt(["run"] + exampleArgs("mps2-an385") + ["--until", "nope", "--timeout", "1s", "--junit", report], runtime: runtime)
        #expect(t.code == 1)
        #expect(try junit(report, failures: 1, names: ["until /nope/"]).code == 0)
    }
}
