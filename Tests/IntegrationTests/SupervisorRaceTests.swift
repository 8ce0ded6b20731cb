import ControlAPI
import Foundation
import Testing
import TestSupport

/// Many clients at once against one supervisor, which is killed on the way:
/// what runs afterwards is exactly what the resources say.
@Suite(.serialized) struct SupervisorRaceTests {
    /// The shims of instance `name` in this fixture.
    func shims(_ f: SupervisorFixture, _ name: String) -> [Int32] {
        processes { $0.contains("\u{0}--shim\u{0}") && $0.contains("\"instance\":\"default/\(name)\"") && $0.contains(f.state) }
    }

    /// 10 clients apply and delete the same 5 names (and claim and release
    /// from a pool) for 60 s, the supervisor is SIGKILLed twice meanwhile;
    /// then a final apply and delete: one shim per live instance, no row for
    /// a deleted one, no QEMU without a row, the pool within maxInstances at
    /// every sample.
    @Test func concurrentAppliesDeletesAndTwoSupervisorKills() async throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let seconds = Double(ProcessInfo.processInfo.environment["VTARGET_RACE_SECONDS"] ?? "") ?? 60
        let names = (0..<5).map { "race\($0)" }
        let files = names.map { f.targets([$0]) }
        let pool = f.work + "/pool.yaml"
        try """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: warm}
            spec:
              qemuConfig:
                machine: mps2-an385
                drives:
                  - {name: firmware, type: pflash, source: {configMap: {name: mps2-an385-firmware}}}
                devices:
                  - {name: uart0, type: serial}
              readiness: {device: uart0, pattern: "echo ready", timeout: 30s}
            ---
            apiVersion: kubetarget.dev/v1alpha1
            kind: VirtualTargetPool
            metadata: {name: ci}
            spec: {targetRef: {name: warm}, minReady: 1, maxInstances: 2}
            """.write(toFile: pool, atomically: true, encoding: .utf8)
        var r = try f.vt(["apply", "-f", f.firmwareMap, "-f", firmware + "/mps2-an385-firmware.yaml", "-f", pool])
        #expect(r.code == 0, "\(r.stderr)")

        let end = Date().addingTimeInterval(seconds)
        let maxPool = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<10 {
                group.addTask {
                    var rng = SystemRandomNumberGenerator()
                    while Date() < end {
                        let i = Int.random(in: 0..<names.count, using: &rng)
                        switch (worker, Int.random(in: 0..<3, using: &rng)) {
                        case (0, _), (1, _):
                            // Two clients churn the pool.
                            let c = try f.vt(["claim", "ci", "--timeout", "2s", "-o", "name"])
                            if c.code == 0 { try f.vt(["release", c.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "/").last.map(String.init) ?? ""]) }
                        case (_, 0): try f.vt(["delete", "-f", files[i]])
                        default: try f.vt(["apply", "-f", files[i]])
                        }
                    }
                }
            }
            // The sampler: members of the pool never exceed maxInstances.
            group.addTask {
                while Date() < end {
                    let r = try f.vt(["get", "instances", "-o", "json"])
                    if r.code == 0, let list = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] {
                        let items = list["items"] as? [[String: Any]] ?? []
                        let members = items.filter { f.status($0)["pool"] as? String == "ci" }.count
                        maxPool.withLock { $0 = max($0, members) }
                    }
                    usleep(250_000)
                }
            }
            // The killer: twice, a third and two thirds of the way.
            group.addTask {
                for fraction in [1.0 / 3, 2.0 / 3] {
                    let at = end.addingTimeInterval(-seconds * (1 - fraction))
                    while Date() < at { usleep(50_000) }
                    if let pid = f.supervisorPID() { kill(pid, SIGKILL) }
                }
            }
            try await group.waitForAll()
        }
        #expect(maxPool.withLock { $0 } <= 2, "pool members sampled above maxInstances 2: \(maxPool.withLock { $0 })")

        // The final word: the first three applied, the last two deleted.
        for i in 0..<3 {
            r = try f.vt(["apply", "-f", files[i]])
            #expect(r.code == 0, "\(r.stderr)")
        }
        for i in 3..<5 { _ = try f.vt(["delete", "-f", files[i]]) }
        let items = try f.waitFor("three instances and the pool Ready", seconds: 60) { items in
            let standalone = items.filter { f.status($0)["pool"] == nil }
            return Set(standalone.map(f.name)) == Set(names.prefix(3)) && items.allSatisfy { f.ready($0) }
                && items.filter { f.status($0)["pool"] as? String == "ci" && f.status($0)["claimedAt"] == nil }.count >= 1
        }
        // Give any straggler a moment to show itself.
        usleep(500_000)
        for n in names.prefix(3) { #expect(shims(f, n).count == 1, "\(n): shims \(shims(f, n))") }
        for n in names.suffix(2) {
            #expect(shims(f, n).isEmpty, "\(n) was deleted but has shims \(shims(f, n))")
            #expect(!items.contains { f.name($0) == n }, "\(n) was deleted but has a row")
        }
        let rows = try f.instances(["-A"])
        #expect(f.shims().count == rows.count, "shims \(f.shims().count) for \(rows.count) rows")
        #expect(qemuProcesses(mentioning: f.runtime).count == rows.count, "QEMUs \(qemuProcesses(mentioning: f.runtime).count) for \(rows.count) rows")
        #expect(rows.filter { f.status($0)["pool"] as? String == "ci" }.count <= 2)
    }

    /// A claim/release loop while another client lists as fast as it can: no
    /// API call waits on a guest or on another call's I/O.
    @Test func claimReleaseUnderAGetHammerStaysUnderAHundredMilliseconds() async throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let pool = f.work + "/pool.yaml"
        try """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: warm}
            spec:
              qemuConfig:
                machine: mps2-an385
                drives:
                  - {name: firmware, type: pflash, source: {configMap: {name: mps2-an385-firmware}}}
                devices:
                  - {name: uart0, type: serial}
              readiness: {device: uart0, pattern: "echo ready", timeout: 30s}
            ---
            apiVersion: kubetarget.dev/v1alpha1
            kind: VirtualTargetPool
            metadata: {name: ci}
            spec: {targetRef: {name: warm}, minReady: 2, maxInstances: 3}
            """.write(toFile: pool, atomically: true, encoding: .utf8)
        let r = try f.vt(["apply", "-f", firmware + "/mps2-an385-firmware.yaml", "-f", pool])
        #expect(r.code == 0, "\(r.stderr)")
        try f.waitFor("the pool warm", { items in items.count >= 2 && items.allSatisfy { f.ready($0) && f.status($0)["phase"] as? String == "Running" } })
        let client = ControlClient(socketPath: f.runtime + "/supervisor.sock")
        let slowest = Locked<(Double, String)>((0, ""))
        func timed<T>(_ what: String, _ call: () async throws -> T) async rethrows -> T {
            let t0 = ContinuousClock.now
            let out = try await call()
            let d = ContinuousClock.now - t0
            let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
            slowest.withLock { if ms > $0.0 { $0 = (ms, what) } }
            return out
        }
        let rounds = 30
        let done = Locked(false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var n = 0
                while !done.withLock({ $0 }) && n < 20_000 {
                    let _: [InstanceInfo] = try await timed("get instances") { try await client.get("/v1/instances?namespace=default") }
                    let _: [PoolInfo] = try await timed("get pools") { try await client.get("/v1/pools?namespace=default") }
                    n += 1
                }
            }
            group.addTask {
                defer { done.withLock { $0 = true } }
                for _ in 0..<rounds {
                    let claimed: InstanceInfo = try await timed("claim") { try await client.send(.POST, "/v1/pools/default/ci/claim?timeout=30") }
                    let _: ObjectResult = try await timed("release") { try await client.send(.POST, "/v1/instances/default/\(claimed.name)/release") }
                }
            }
            try await group.waitForAll()
        }
        let (ms, what) = slowest.withLock { $0 }
        #expect(ms < 100, "slowest API call: \(what) took \(Int(ms)) ms")
    }
}

/// A value shared by test tasks.
final class Locked<T: Sendable>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
