import Foundation
import Testing

/// These tests drive the real `vtarget` binary against real QEMU, real unix
/// sockets and real clients (socat), as a user would.
import TestSupport
let vtarget = repoRoot + "/.build/debug/vtarget"
let firmware = repoRoot + "/firmware-samples/build"

struct RunResult {
    var code: Int32
    var stdout: String
    var stderr: String
}

/// A private runtime directory per test, so leftovers are attributable.
func makeRuntimeDir() -> String {
    let dir = "/tmp/vt-it-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
    return dir
}

func launch(_ args: [String], runtime: String, cwd: String = repoRoot, executable: String = vtarget,
            environment: [String: String] = [:]) throws -> (Process, Pipe, Pipe) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    var env = ProcessInfo.processInfo.environment
    env["VTARGET_RUNTIME_DIR"] = runtime
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    return (p, out, err)
}

func vt(_ args: [String], runtime: String, cwd: String = repoRoot) throws -> RunResult {
    try finish(launch(args, runtime: runtime, cwd: cwd))
}

/// A shell pipeline with VTARGET_RUNTIME_DIR set, for stdin-driven verbs.
func shell(_ script: String, runtime: String) throws -> RunResult {
    try finish(launch(["-c", script], runtime: runtime, executable: "/bin/sh"))
}

/// Waits for a launched process and collects what it printed.
func finish(_ launched: (Process, Pipe, Pipe)) -> RunResult {
    let (p, out, err) = launched
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return RunResult(code: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// What a running vtarget printed on stdout up to `marker` (or the deadline).
func readUntil(_ pipe: Pipe, _ marker: String, seconds: Double) -> String {
    var seen = Data()
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline, !String(decoding: seen, as: UTF8.self).contains(marker) {
        seen += pipe.fileHandleForReading.availableData
    }
    return String(decoding: seen, as: UTF8.self)
}

/// QEMU processes whose command line or working directory (QEMU's own
/// directory, which its argv names only relatively) mentions `marker`.
func qemuProcesses(mentioning marker: String) -> [Int32] {
    processes { cmd in cmd.hasPrefix("qemu-system") || cmd.contains("/qemu-system") }.filter { pid in
        let cmd = String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data(), as: UTF8.self)
        return cmd.contains(marker) || ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"))?.contains(marker) ?? false)
    }
}

/// Processes whose command line (NUL-separated, as in /proc) satisfies `matches`.
func processes(_ matches: (String) -> Bool) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return matches(String(decoding: data, as: UTF8.self))
    }
}

/// How many entries /proc/PID/SUBDIR has: `fd` for open fds, `task` for threads.
func procEntries(_ pid: Int32, _ subdirectory: String) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/\(subdirectory)")) ?? []).count
}

/// The run leaves nothing: no QEMU naming the runtime dir, an empty runtime dir.
func expectNothingLeft(_ runtime: String, sourceLocation: SourceLocation = #_sourceLocation) {
    var left: [Int32] = []
    for _ in 0..<20 {
        left = qemuProcesses(mentioning: runtime)
        if left.isEmpty { break }
        usleep(100_000)
    }
    #expect(left.isEmpty, "QEMU left running: \(left)", sourceLocation: sourceLocation)
    let files = (try? FileManager.default.contentsOfDirectory(atPath: runtime)) ?? []
    #expect(files.isEmpty, "files left in \(runtime): \(files)", sourceLocation: sourceLocation)
    try? FileManager.default.removeItem(atPath: runtime)
}

func exampleArgs(_ board: String) -> [String] {
    ["-f", "examples/\(board).yaml", "-f", "\(firmware)/\(board)-firmware.yaml"]
}

@Suite(.serialized) struct RunCommandTests {
    static let samples = ["stm32vldiscovery", "netduino2", "netduinoplus2", "lm3s6965evb", "mps2-an385", "mps2-an386", "mps2-an500", "x86-pc"]

    @Test func firmwareIsBuilt() {
        for s in Self.samples {
            #expect(FileManager.default.fileExists(atPath: "\(firmware)/\(s)-firmware.yaml"), "run `make firmware` first: \(s)")
        }
    }

    /// Boots each sample, waits for Ready, then a real client (socat) types
    /// through the serial socket and must see the echo and the firmware's reply.
    @Test(arguments: samples)
    func sampleBootsAndEchoes(_ board: String) throws {
        let runtime = makeRuntimeDir()
        let device = board == "x86-pc" ? "COM1" : "UART0"
        let expect = board == "x86-pc" ? "vtx-echo" : "pong"
        let send = board == "x86-pc" ? "vtx-echo" : "ping\\r"
        let script = "printf '\(send)' | socat -t 3 - UNIX-CONNECT:$VTARGET_SERIAL_\(device) > $VTARGET_OUT; grep -q '\(expect)' $VTARGET_OUT"
        let outFile = runtime + ".out"
        setenv("VTARGET_OUT", outFile, 1)
        defer { unsetenv("VTARGET_OUT"); try? FileManager.default.removeItem(atPath: outFile) }
        let r = try vt(["run"] + exampleArgs(board) + ["--timeout", "60s", "--", "sh", "-c", script], runtime: runtime)
        #expect(r.code == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("hello from"), "stdout: \(r.stdout)")
        let seen = (try? String(contentsOfFile: outFile, encoding: .utf8)) ?? ""
        #expect(seen.contains("echo ready"), "the late client got the replayed banner: \(seen)")
        #expect(seen.contains(expect))
        expectNothingLeft(runtime)
    }

    /// The samples sleep in WFI/HLT: an idle target must cost the host next to nothing.
    @Test(arguments: ["netduinoplus2", "x86-pc"])
    func idleTargetsUseNearZeroHostCPU(_ board: String) throws {
        let runtime = makeRuntimeDir()
        let (p, out, _) = try launch(["run"] + exampleArgs(board), runtime: runtime)
        #expect(readUntil(out, "echo ready", seconds: 30).contains("echo ready"))
        let qemu = try #require(qemuProcesses(mentioning: runtime).first)
        func cpuSeconds() -> Double {
            let stat = String(decoding: FileManager.default.contents(atPath: "/proc/\(qemu)/stat") ?? Data(), as: UTF8.self)
            let fields = stat.split(separator: ")").last!.split(separator: " ")
            return (Double(fields[11])! + Double(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
        }
        usleep(500_000)
        let before = cpuSeconds()
        usleep(2_000_000)
        let share = (cpuSeconds() - before) / 2.0
        #expect(share < 0.10, "\(board) idles at \(Int(share * 100))% of a core")
        p.terminate()
        p.waitUntilExit()
        expectNothingLeft(runtime)
    }

    @Test func seedExampleRunsUnchanged() throws {
        let runtime = makeRuntimeDir()
        let r = try vt(["run", "-f", "examples/seed/stm32f4-qemu.yaml", "-f", "\(firmware)/stm32f4-firmware.yaml",
                        "--until", "echo ready", "--timeout", "30s"], runtime: runtime)
        #expect(r.code == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.hasPrefix("hello from stm32vldiscovery"))
        #expect(r.stderr.contains("stm32-p103 is not in upstream QEMU; running on stm32vldiscovery"))
        expectNothingLeft(runtime)
    }

    @Test func timeoutExitsOneAndCleansUp() throws {
        let runtime = makeRuntimeDir()
        let r = try vt(["run"] + exampleArgs("lm3s6965evb") + ["--until", "never-printed", "--timeout", "1s"], runtime: runtime)
        #expect(r.code == 1)
        #expect(r.stderr.contains("timed out after 1s waiting for /never-printed/"))
        #expect(r.stdout.contains("hello from lm3s6965evb"))
        expectNothingLeft(runtime)
    }

    @Test func ttlExpiryExitsNonZeroSayingExpired() throws {
        let runtime = makeRuntimeDir()
        let r = try vt(["run"] + exampleArgs("lm3s6965evb") + ["--ttl", "1s"], runtime: runtime)
        #expect(r.code == 1)
        #expect(r.stderr.contains("expired"))
        expectNothingLeft(runtime)
    }

    @Test func sigtermStopsEverything() throws {
        let runtime = makeRuntimeDir()
        let (p, out, _) = try launch(["run"] + exampleArgs("netduinoplus2"), runtime: runtime)
        let seen = readUntil(out, "echo ready", seconds: 20)
        #expect(seen.contains("echo ready"))
        #expect(!qemuProcesses(mentioning: runtime).isEmpty, "QEMU should be running before SIGTERM")
        p.terminate()
        p.waitUntilExit()
        #expect(p.terminationStatus == 128 + 15)
        expectNothingLeft(runtime)
    }

    @Test func qemuThatFailsToStartShowsItsStderr() throws {
        let dir = NSTemporaryDirectory() + "vt-bad-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: broken}
            spec:
              qemuConfig:
                machine: lm3s6965evb
                extraArgs: [-no-such-option]
                devices: [{name: uart0, type: serial}]
            """.write(toFile: dir + "/t.yaml", atomically: true, encoding: .utf8)
        let runtime = makeRuntimeDir()
        let r = try vt(["run", "-f", dir + "/t.yaml", "--allow-extra-args", "--timeout", "10s"], runtime: runtime)
        #expect(r.code == 1)
        #expect(r.stderr.contains("QEMU failed to start"), "\(r.stderr)")
        #expect(r.stderr.contains("-no-such-option"), "QEMU's own message is shown: \(r.stderr)")
        expectNothingLeft(runtime)
    }

    @Test func badInputExitsTwoAndStartsNothing() throws {
        let runtime = makeRuntimeDir()
        let r = try vt(["run", "-f", "Tests/TargetSpecTests/BadInputs/unknown-machine.yaml"], runtime: runtime)
        #expect(r.code == 2)
        #expect(r.stderr.contains("unknown-machine.yaml:7:14: error: spec.qemuConfig.machine: unknown machine \"stm32vldiscovry\"; did you mean \"stm32vldiscovery\"?"))
        expectNothingLeft(runtime)
        let flags = try vt(["run", "--timeout", "soon", "-f", "examples/x86-pc.yaml"], runtime: runtime)
        #expect(flags.code == 2)
        #expect(flags.stderr.contains("--timeout: expected a duration"))
        let missing = try vt(["run", "-f", "examples/x86-pc.yaml"], runtime: runtime)
        #expect(missing.code == 2, "a missing ConfigMap is bad input: \(missing.stderr)")
        #expect(missing.stderr.contains("ConfigMap \"x86-pc-firmware\" is not among the inputs"))
        expectNothingLeft(runtime)
    }

    @Test func commandExitCodeIsTheRunsExitCode() throws {
        let runtime = makeRuntimeDir()
        let r = try vt(["run"] + exampleArgs("mps2-an385") + ["--timeout", "30s", "--", "sh", "-c",
                        "test -S \"$VTARGET_SERIAL_UART0\" && test \"$VTARGET_NAME\" = mps2-an385 && exit 7"], runtime: runtime)
        #expect(r.code == 7, "stderr: \(r.stderr)")
        expectNothingLeft(runtime)
    }

    @Test func severalTargetsInOneRun() throws {
        let runtime = makeRuntimeDir()
        let script = "test -S \"$VTARGET_NODE_1_SERIAL_UART0\" && test -S \"$VTARGET_NODE_2_SERIAL_UART0\" && test \"$VTARGET_NAME\" = node-1,node-2"
        let r = try vt(["run", "-f", "examples/two-targets.yaml", "-f", "\(firmware)/lm3s6965evb-firmware.yaml",
                        "--timeout", "30s", "--", "sh", "-c", script], runtime: runtime)
        #expect(r.code == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("node-1/uart0| hello from lm3s6965evb"))
        #expect(r.stdout.contains("node-2/uart0| hello from lm3s6965evb"))
        expectNothingLeft(runtime)
    }

    @Test func renderPrintsTheExactCommand() throws {
        let runtime = makeRuntimeDir()
        let r = try vt(["render", "-f", "examples/seed/stm32f4-qemu.yaml", "-f", "\(firmware)/stm32f4-firmware.yaml", "--format", "shell"], runtime: runtime)
        #expect(r.code == 0)
        #expect(r.stdout.hasPrefix("qemu-system-arm -name stm32f4-qemu -machine stm32vldiscovery -accel tcg -nodefaults"))
        #expect(r.stdout.contains("-serial chardev:serial-uart0 -serial chardev:can-can0 -kernel "))
        expectNothingLeft(runtime)
    }

    @Test func createConfigMapRoundTrips() throws {
        let runtime = makeRuntimeDir()
        let r = try vt(["create", "configmap", "fw", "--from-file=fw.elf=\(firmware)/lm3s6965evb.elf",
                        "--from-file=examples/x86-pc.yaml", "--dry-run=client", "-o", "yaml"], runtime: runtime)
        #expect(r.code == 0)
        #expect(r.stdout.contains("binaryData:\n  fw.elf: f0VMRg"), "\(r.stdout)")
        #expect(r.stdout.contains("data:\n  x86-pc.yaml: \"# A multiboot kernel"))
        let bad = try vt(["create", "configmap", "Bad_Name", "--from-file=examples/x86-pc.yaml", "--dry-run=client"], runtime: runtime)
        #expect(bad.code == 2)
        expectNothingLeft(runtime)
    }

    @Test func machinesListsEveryProfileWithAvailability() throws {
        let runtime = makeRuntimeDir()
        let r = try vt(["machines"], runtime: runtime)
        #expect(r.code == 0)
        for name in ["stm32vldiscovery", "netduino2", "netduinoplus2", "stm32-p103", "lm3s6965evb", "mps2-an385", "mps2-an386",
                     "mps2-an500", "mps2-an505", "microbit", "virt-arm", "vexpress-a9", "virt-aarch64", "pc", "q35", "microvm"] {
            let line = r.stdout.split(separator: "\n").first { $0.hasPrefix(name + " ") }
            #expect(line?.contains("   yes   ") == true, "\(name): \(line ?? "missing")")
        }
        // The KVM verdict comes from booting a guest, with its reason.
        let kvm = r.stdout.split(separator: "\n").first { $0.hasPrefix("KVM: ") }
        #expect(kvm?.contains("-accel kvm -cpu host") == true || kvm?.contains("/dev/kvm") == true || kvm?.contains("not installed") == true,
                "\(kvm ?? "no KVM line")")
        expectNothingLeft(runtime)
    }
}
