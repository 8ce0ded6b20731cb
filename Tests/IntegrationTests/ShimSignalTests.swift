import Foundation
import InstanceContract
import Testing

/// A shim started as the supervisor starts one (`vtarget run --shim JSON`,
/// the go-byte on stdin), without a supervisor: the test plays its part.
final class ShimFixture {
    let runtime = makeRuntimeDir()
    let state = "/tmp/vt-st-\(UInt32.random(in: 0...UInt32.max))"
    let arguments: ShimArguments
    let go = Pipe()
    private(set) var process: Process?

    init(name: String = "shim", board: String = "lm3s6965evb", poolSnapshot: Bool = false) throws {
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let spec = state + "/spec.yaml"
        let map = try String(contentsOfFile: firmware + "/\(board)-firmware.yaml", encoding: .utf8)
        try """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: \(name)}
            spec:
              qemuConfig:
                machine: \(board)
                drives:
                  - {name: firmware, type: pflash, source: {configMap: {name: \(board)-firmware}}}
                devices:
                  - {name: uart0, type: serial}
              readiness: {device: uart0, pattern: "echo ready", timeout: 20s}
            ---
            \(map)
            """.write(toFile: spec, atomically: true, encoding: .utf8)
        var a = ShimArguments(instance: "default/\(name)", specFile: spec, statusFile: state + "/status.json", relativeTo: state)
        a.poolSnapshot = poolSnapshot
        arguments = a
    }

    var layout: InstanceLayout { .supervised(runtime: runtime, namespace: "default", name: String(arguments.instance.dropFirst(8))) }

    /// Starts the shim; it waits for its go-byte.
    func start(environment extra: [String: String] = [:]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: vtarget)
        p.arguments = arguments.arguments()
        var env = ProcessInfo.processInfo.environment
        env["VTARGET_RUNTIME_DIR"] = runtime
        for (k, v) in extra { env[k] = v }
        p.environment = env
        p.standardInput = go
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
    }

    func sendGo() { go.fileHandleForWriting.write(Data([0x67])) }

    var status: ShimStatus? { FileManager.default.contents(atPath: arguments.statusFile).flatMap(ShimStatus.decode) }

    /// Polls status.json until `done` holds.
    @discardableResult
    func waitForStatus(seconds: Double = 30, _ done: (ShimStatus) -> Bool) -> ShimStatus? {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if let s = status, done(s) { return s }
            usleep(20_000)
        }
        return nil
    }

    /// SIGTERM, then how long the shim took to exit (nil: not within 5 s).
    func terminate() -> Double? {
        guard let p = process else { return nil }
        let start = Date()
        kill(p.processIdentifier, SIGTERM)
        while p.isRunning, Date().timeIntervalSince(start) < 5 { usleep(10_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            return nil
        }
        return Date().timeIntervalSince(start)
    }

    deinit {
        if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for pid in qemuProcesses(mentioning: runtime) { kill(pid, SIGKILL) }
        for d in [runtime, state] { try? FileManager.default.removeItem(atPath: d) }
    }
}

/// Alive and not a zombie.
func running(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    return !stat[stat.index(after: close)...].hasPrefix(" Z")
}

@Suite(.serialized) struct ShimSignalTests {
    /// Blocked reading its go-byte: nothing started, nothing to wait for.
    @Test func sigtermBeforeTheGoByte() throws {
        let f = try ShimFixture()
        try f.start()
        usleep(500_000)
        #expect(f.terminate() != nil, "the shim ignored SIGTERM while waiting for its go-byte")
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }

    /// Right after the go-byte: QEMU spawning, endpoints connecting.
    @Test(arguments: [0, 30_000, 100_000])
    func sigtermWhileStarting(_ delay: UInt32) throws {
        let f = try ShimFixture()
        try f.start()
        f.sendGo()
        usleep(delay)
        #expect(f.terminate() != nil, "the shim ignored SIGTERM \(delay / 1000) ms after its go-byte")
        var left = qemuProcesses(mentioning: f.runtime)
        for _ in 0..<20 where !left.isEmpty { usleep(50_000); left = qemuProcesses(mentioning: f.runtime) }
        #expect(left.isEmpty, "QEMU left: \(left)")
    }

    /// A QEMU that never answers its QMP handshake kept the session in its
    /// start, where it read no events: SIGTERM was caught and never acted on.
    @Test func sigtermWhileQEMUNeverAnswers() throws {
        let f = try ShimFixture()
        let bin = f.state + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        // A stand-in that never greets; its odd duration finds it again.
        let duration = "\(UInt32.random(in: 100_000...999_999))"
        try "#!/bin/sh\nexec sleep \(duration)\n".write(toFile: bin + "/qemu-system-arm", atomically: true, encoding: .utf8)
        chmod(bin + "/qemu-system-arm", 0o755)
        try f.start(environment: ["PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")])
        f.sendGo()
        let end = Date().addingTimeInterval(10)
        while processes({ $0 == "sleep\u{0}\(duration)\u{0}" }).isEmpty, Date() < end { usleep(20_000) }
        usleep(300_000)
        #expect(f.terminate() != nil, "the shim ignored SIGTERM while its QEMU never answered")
        #expect(f.status?.reason == .stopped, "\(String(describing: f.status))")
        var left = processes { $0 == "sleep\u{0}\(duration)\u{0}" }
        for _ in 0..<20 where !left.isEmpty { usleep(50_000); left = processes { $0 == "sleep\u{0}\(duration)\u{0}" } }
        #expect(left.isEmpty, "the stand-in QEMU outlived its shim: \(left)")
    }

    /// Running and Ready: QEMU goes with it, and the status says Stopped.
    @Test func sigtermWhileRunning() throws {
        let f = try ShimFixture()
        try f.start()
        f.sendGo()
        let s = f.waitForStatus { $0.ready }
        let qemu = try #require(s?.qemuPID)
        #expect(f.terminate() != nil)
        #expect(!running(qemu), "QEMU \(qemu) outlived its shim")
        #expect(f.status?.reason == .stopped && f.status?.isFinished == true)
    }

    /// The supervisor died: stdin at end of file, the shim orphaned to init.
    @Test func sigtermAfterTheSupervisorDied() throws {
        let f = try ShimFixture()
        let go = f.state + "/go"
        try Data([0x67]).write(to: URL(fileURLWithPath: go))
        // sh starts the shim in the background and exits: the shim's parent is gone.
        // No pipe to sh: the orphan would hold it open, and a reader would wait for good.
        let quoted = ([vtarget] + f.arguments.arguments()).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        // system(3) waits for sh itself; Foundation's Process left it a zombie here.
        let script = "VTARGET_RUNTIME_DIR='\(f.runtime)' " + quoted.joined(separator: " ") + " < \(go) > /dev/null 2>&1 & echo $! > \(f.state)/pid"
        #expect(system(script) == 0)
        let pid = try String(contentsOfFile: f.state + "/pid", encoding: .utf8)
        let shim = try #require(Int32(pid.trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(shim, SIGKILL) }
        let s = f.waitForStatus { $0.ready }
        let qemu = try #require(s?.qemuPID)
        kill(shim, SIGTERM)
        let start = Date()
        while running(shim) || running(qemu), Date().timeIntervalSince(start) < 5 { usleep(10_000) }
        #expect(!running(shim), "the orphaned shim ignored SIGTERM")
        #expect(!running(qemu), "QEMU \(qemu) outlived its shim")
    }
}
