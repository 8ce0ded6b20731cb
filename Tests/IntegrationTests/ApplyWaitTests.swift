import Foundation
import Testing
import TestSupport

/// `apply --wait` and `wait --for condition=Ready` under the supervisor:
/// woken by its events, they end when the instances are Ready, at once when
/// one fails, and at `--timeout` otherwise. One supervisor for every check.
@Suite(.serialized) struct ApplyWaitTests {
    /// A target on lm3s6965evb whose readiness pattern is `pattern`.
    func target(_ f: SupervisorFixture, _ name: String, pattern: String, timeout: String) throws -> String {
        let path = f.work + "/\(name).yaml"
        try """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: \(name)}
            spec:
              qemuConfig:
                machine: lm3s6965evb
                drives:
                  - {name: firmware, type: pflash, source: {configMap: {name: lm3s6965evb-firmware, key: firmware.elf}}}
                devices:
                  - {name: uart0, type: serial}
              readiness: {device: uart0, pattern: "\(pattern)", timeout: \(timeout)}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func applyWaitEndsReadyOnFailureAndOnTimeout() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }

        // Ready: every instance is Ready when apply returns, with no polling after it.
        var r = try f.vt(["apply", "--wait", "-f", f.targets(["w1", "w2"]), "-f", f.firmwareMap])
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("qemuvirtualtarget.qemu.kubetarget.dev/w1 created"), "\(r.stdout)")
        let items = try f.instances()
        #expect(items.count == 2 && items.allSatisfy(f.ready), "\(items.map(f.describe))")

        // Unchanged and already Ready: at once.
        r = try f.vt(["apply", "--wait", "--timeout", "5s", "-f", f.targets(["w1"]), "-f", f.firmwareMap])
        #expect(r.code == 0 && r.stdout.contains("w1 unchanged"), "\(r.stdout) \(r.stderr)")

        // A failing instance (its readiness times out after 1 s): exit 1, why, and long before --timeout.
        let started = Date()
        r = try f.vt(["apply", "--wait", "--timeout", "60s", "-f", try target(f, "never-ready", pattern: "no such line", timeout: "1s")])
        #expect(r.code == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("instance \"never-ready\": Failed before Ready (ReadinessTimeout"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 50, "the failure ended the wait, not the timeout")
        // `wait` on it says so too, at once.
        r = try f.vt(["wait", "never-ready", "--for", "condition=Ready", "--timeout", "60s"])
        #expect(r.code == 1 && r.stderr.contains("Failed before Ready"), "\(r.stderr)")

        // Still starting at --timeout: exit 1, naming it.
        r = try f.vt(["apply", "--wait", "--timeout", "2s", "-f", try target(f, "slow", pattern: "no such line", timeout: "60s")])
        #expect(r.code == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("instance \"slow\": not Ready within 2s (phase "), "\(r.stderr)")
        r = try f.vt(["wait", "slow", "--for", "condition=Ready", "--timeout", "1s"])
        #expect(r.code == 1 && r.stderr.contains("not Ready within 1s"), "\(r.stderr)")

        // A Ready supervised instance: `wait` returns 0.
        r = try f.vt(["wait", "w2", "--for", "condition=Ready", "--timeout", "10s"])
        #expect(r.code == 0, "\(r.stderr)")
    }

    @Test func timeoutWithoutWaitIsBadInput() throws {
        let r = try finish(launch(["apply", "--timeout", "5s", "-f", "examples/lm3s6965evb.yaml"], runtime: makeRuntimeDir()))
        #expect(r.code == 2 && r.stderr.contains("--timeout needs --wait"), "\(r.stderr)")
        let bad = try finish(launch(["apply", "--wait", "--timeout", "soon", "-f", "examples/lm3s6965evb.yaml"], runtime: makeRuntimeDir()))
        #expect(bad.code == 2 && bad.stderr.contains("--timeout: expected"), "\(bad.stderr)")
    }

    /// Node B on the bus first (Ready promises its CAN device joined); node
    /// A started after: A's link joins while A's guest already runs, and
    /// A's very first frame (100#00, at its first SysTick) still reaches B,
    /// whose answer A prints.
    @Test func aFrameSentAtBootReachesTheOtherMember() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let pair = try String(contentsOfFile: "examples/can-pair.yaml", encoding: .utf8).components(separatedBy: "\n---\n")
        #expect(pair.count == 2)
        let (nodeA, nodeB) = (f.work + "/node-a.yaml", f.work + "/node-b.yaml")
        try pair[0].write(toFile: nodeA, atomically: true, encoding: .utf8)
        try pair[1].write(toFile: nodeB, atomically: true, encoding: .utf8)
        var r = try f.vt(["apply", "--wait", "--timeout", "30s", "-f", nodeB, "-f", firmware + "/netduinoplus2-can-b-firmware.yaml"])
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        r = try f.vt(["run", "-f", nodeA, "-f", firmware + "/stm32vldiscovery-can-a-firmware.yaml", "--until", "can rx 101100", "--timeout", "20s"])
        #expect(r.code == 0, "A's first frame and B's answer to it: \(r.stdout) \(r.stderr)")
        r = try f.vt(["logs", "node-b"])
        #expect(r.stdout.contains("can rx 100100"), "\(r.stdout)")
    }
}
