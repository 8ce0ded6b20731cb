import Foundation
import Sandbox
import Testing
@testable import TargetRuntime

/// What QEMU's confinement costs at start: /bin/true spawned and reaped
/// through the same path, unconfined, with the namespaces but no tmpfs, with
/// the namespaces and tmpfs over the host's scratch trees (the sandbox before
/// the minimal root), and with everything (namespaces, the minimal root and
/// its /proc, seccomp, a uid of its own as root). Quantiles of interleaved runs; the speed goal
/// for the whole sandbox is 5 ms.
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

    @Test func confinementCostsLittleAtStart() async throws {
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
        for _ in 0..<60 {
            for (i, c) in cases.enumerated() { times[i].append(try await spawnMilliseconds(c.1)) }
        }
        let sorted = times.map { $0.sorted() }
        for (i, c) in cases.enumerated() {
            print("sandbox cost: \(c.0): median \(String(format: "%.2f", sorted[i][sorted[i].count / 2])) ms, "
                  + "lower quartile \(String(format: "%.2f", sorted[i][sorted[i].count / 4])) ms, min \(String(format: "%.2f", sorted[i][0])) ms")
        }
        // The lower quartile: two cores shared with other jobs make the
        // median swing by milliseconds between identical runs.
        let cost = sorted[3][sorted[3].count / 4] - sorted[0][sorted[0].count / 4]
        #expect(cost < 5, "the sandbox costs \(cost) ms a start")
    }
}
