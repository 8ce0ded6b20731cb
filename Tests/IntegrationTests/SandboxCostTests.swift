import Foundation
import Sandbox
import Testing
@testable import TargetRuntime

/// What QEMU's confinement costs at start: /bin/true spawned and reaped
/// through the same path, unconfined, with the namespaces but no tmpfs, with
/// the namespaces and tmpfs over the host's scratch trees (the sandbox before
/// the minimal root), and with everything (namespaces, the minimal root and
/// its /proc, seccomp, a uid of its own as root). Each level must spawn and
/// reap its child; the times are printed for whoever reads the log and are
/// not asserted: a speed goal in a test fails on a loaded CI machine (the
/// lower quartile once measured 5.29 ms there against 2–3 ms here), so the
/// sandbox's cost is a figure of `make bench` (scripts/bench.py, `run` beside
/// `run --no-sandbox`, each beside raw QEMU).
@Suite(.serialized) struct SandboxCostTests {
    func spawnMilliseconds(_ policy: SandboxPolicy) async throws -> Double {
        let start = ContinuousClock.now
        let child = try await ChildProcess.spawn(SpawnRequest(
            executable: "/bin/true", arguments: [], environment: [], workingDirectory: "/", fds: [-1, -1, -1], sandbox: policy))
        let status = await child.waitForExit()
        #expect(status == .exited(0))
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    @Test func everyLevelOfConfinementSpawnsAndReaps() async throws {
        let full = try await QEMUSandbox.policy(enabled: true)
        var noMounts = full
        noMounts.privateMounts = []
        noMounts.minimalRoot = nil
        // The sandbox before the minimal root: the host's tree with empty tmpfs over its scratch trees.
        var hostTree = noMounts
        hostTree.privateMounts = ["/tmp", "/var/tmp", "/dev/shm"].map { SandboxPolicy.PrivateMount(path: $0, options: "size=16m,nr_inodes=1024,mode=1777", readOnly: false) }
            + ["/run", "/home", "/root", "/mnt", "/media", "/srv"].map { SandboxPolicy.PrivateMount(path: $0, options: "size=64k,nr_inodes=16,mode=0755", readOnly: true) }
        let cases: [(String, SandboxPolicy)] = [("unconfined", .none), ("namespaces, no tmpfs", noMounts),
                                                ("host tree, tmpfs over scratch trees", hostTree), ("full sandbox (minimal root)", full)]
        var times = Array(repeating: [Double](), count: cases.count)
        for _ in 0..<20 {
            for (i, c) in cases.enumerated() { times[i].append(try await spawnMilliseconds(c.1)) }
        }
        let sorted = times.map { $0.sorted() }
        for (i, c) in cases.enumerated() {
            print("sandbox cost: \(c.0): median \(String(format: "%.2f", sorted[i][sorted[i].count / 2])) ms, "
                  + "lower quartile \(String(format: "%.2f", sorted[i][sorted[i].count / 4])) ms, min \(String(format: "%.2f", sorted[i][0])) ms")
        }
    }
}
