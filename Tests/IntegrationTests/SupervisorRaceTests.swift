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
        let pool = try f.poolFile(board: "mps2-an385", firmwareMap: "mps2-an385-firmware", min: 1, max: 2)
        var r = try f.vt(["apply", "-f", f.firmwareMap, "-f", firmware + "/mps2-an385-firmware.yaml", "-f", pool])
        #expect(r.code == 0, "\(r.stderr)")

        let end = Date().addingTimeInterval(seconds)
        let maxPool = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<10 {
                group.addTask { try await onThread {
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
                } }
            }
            // The sampler: members of the pool never exceed maxInstances.
            group.addTask { try await onThread {
                while Date() < end {
                    let r = try f.vt(["get", "instances", "-o", "json"])
                    if r.code == 0, let list = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] {
                        let items = list["items"] as? [[String: Any]] ?? []
                        let members = items.filter { f.status($0)["pool"] as? String == "ci" }.count
                        maxPool.withLock { $0 = max($0, members) }
                    }
                    usleep(250_000)
                }
            } }
            // The killer: twice, a third and two thirds of the way.
            group.addTask { await onThread {
                for fraction in [1.0 / 3, 2.0 / 3] {
                    let at = end.addingTimeInterval(-seconds * (1 - fraction))
                    while Date() < at { usleep(50_000) }
                    if let pid = f.supervisorPID() { kill(pid, SIGKILL) }
                }
            } }
            try await group.waitForAll()
        }
        #expect(maxPool.withLock { $0 } <= 2, "pool members sampled above maxInstances 2: \(maxPool.withLock { $0 })")

        // The final word: the first three applied, the last two deleted.
        for i in 0..<3 {
            r = try f.vt(["apply", "-f", files[i]])
            #expect(r.code == 0, "\(r.stderr)")
        }
        for i in 3..<5 { _ = try f.vt(["delete", "-f", files[i]]) }
        // A claim the supervisor committed just before a SIGKILL never reached
        // its client, so nobody releases it: it stays claimed (as it would for
        // a CI job that died), possibly both members. Release what is claimed.
        for item in try f.instances(["-A"]) where f.status(item)["pool"] as? String == "ci" && f.status(item)["claimedAt"] != nil {
            r = try f.vt(["release", f.name(item)])
            #expect(r.code == 0, "release \(f.name(item)): \(r.stderr)")
        }
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

    /// A claim/release loop while another client lists as fast as it can:
    /// every call answers, and answers right (each claim a member of the pool,
    /// each release a restore). How long they take is `make bench`'s
    /// (scripts/bench_supervisor.py), not a test's: a wall-clock bound here
    /// measured the loaded test machine as much as the supervisor.
    @Test func claimReleaseUnderAGetHammerAllAnswer() async throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let client = try warmPool(f)
        let rounds = 30
        let done = Locked(false)
        let listings = Locked(0)
        let actions = Locked<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var n = 0
                while !done.withLock({ $0 }) && n < 20_000 {
                    let instances: [InstanceInfo] = try await client.get("/v1/instances?namespace=default")
                    let pools: [PoolInfo] = try await client.get("/v1/pools?namespace=default")
                    #expect(instances.count >= 2 && instances.count <= 3 && pools.map(\.name) == ["ci"])
                    n += 1
                }
                listings.withLock { $0 = n }
            }
            group.addTask {
                defer { done.withLock { $0 = true } }
                for _ in 0..<rounds {
                    let claimed: InstanceInfo = try await client.send(.POST, "/v1/pools/default/ci/claim?timeout=30")
                    #expect(claimed.pool == "ci" && claimed.claimedAt != nil)
                    let released: ObjectResult = try await client.send(.POST, "/v1/instances/default/\(claimed.name)/release")
                    actions.withLock { $0.append(released.action) }
                }
            }
            try await group.waitForAll()
        }
        #expect(listings.withLock { $0 } > rounds, "the lister got \(listings.withLock { $0 }) rounds in beside \(rounds) claims")
        #expect(actions.withLock { $0 } == Array(repeating: "snapshot restored", count: rounds))
    }

    /// No call waits on a guest or on another call's work: a release whose
    /// shim is stopped (SIGSTOP) cannot end until the shim runs again, and
    /// meanwhile listings, a claim of the other member and its release all
    /// answer. Shown by order, not by time: each of them returns while that
    /// first release is still open, which a supervisor that served calls one
    /// at a time could not do.
    @Test func callsAnswerWhileAReleaseWaitsOnItsStoppedShim() async throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let client = try warmPool(f)
        let first: InstanceInfo = try await client.send(.POST, "/v1/pools/default/ci/claim?timeout=30")
        let shim = try #require(first.pid)
        kill(shim, SIGSTOP)
        defer { kill(shim, SIGCONT) }
        let answered = Locked(false)
        let stuckRelease = Task { () throws -> ObjectResult in
            defer { answered.withLock { $0 = true } }
            return try await client.send(.POST, "/v1/instances/default/\(first.name)/release")
        }
        // The release is in the supervisor's hands once its SIGUSR1 waits on the stopped shim.
        #expect(await pending(SIGUSR1, in: shim, within: 30), "the release never signalled the shim")

        let instances: [InstanceInfo] = try await client.get("/v1/instances?namespace=default")
        let pools: [PoolInfo] = try await client.get("/v1/pools?namespace=default")
        let second: InstanceInfo = try await client.send(.POST, "/v1/pools/default/ci/claim?timeout=30")
        let secondRelease: ObjectResult = try await client.send(.POST, "/v1/instances/default/\(second.name)/release")
        let described: InstanceDescription = try await client.get("/v1/instances/default/\(first.name)")
        // All of the above answered with the first release still open.
        #expect(!answered.withLock { $0 }, "the first release answered before its shim could restore anything")
        #expect(pending(SIGUSR1, in: shim), "the stopped shim's release signal was taken meanwhile")
        #expect(instances.contains { $0.name == first.name } && pools.map(\.name) == ["ci"])
        #expect(second.name != first.name && secondRelease.action == "snapshot restored")
        #expect(described.instance.claimedAt != nil, "the first member is still claimed until its shim restores it")

        kill(shim, SIGCONT)
        let released = try await stuckRelease.value
        #expect(released.action == "snapshot restored")
    }

    /// Pool `ci` of `mps2-an385` members (2 warm, at most 3), all Running and
    /// Ready; a client of the fixture's supervisor.
    func warmPool(_ f: SupervisorFixture) throws -> ControlClient {
        let pool = try f.poolFile(board: "mps2-an385", firmwareMap: "mps2-an385-firmware", min: 2, max: 3)
        let r = try f.vt(["apply", "-f", firmware + "/mps2-an385-firmware.yaml", "-f", pool])
        #expect(r.code == 0, "\(r.stderr)")
        try f.waitFor("the pool warm", { items in items.count >= 2 && items.allSatisfy { f.ready($0) && f.status($0)["phase"] as? String == "Running" } })
        return ControlClient(socketPath: f.runtime + "/supervisor.sock")
    }

    /// Whether `signal` waits, undelivered, on process `pid` (its shared pending set).
    func pending(_ signal: Int32, in pid: Int32) -> Bool {
        guard let mask = statusFields(pid)["ShdPnd"].flatMap({ UInt64($0, radix: 16) }) else { return false }
        return mask & (1 << UInt64(signal - 1)) != 0
    }

    func pending(_ signal: Int32, in pid: Int32, within seconds: Double) async -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if pending(signal, in: pid) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

/// Runs blocking work (a CLI process waited for, a sleep) on a thread of its
/// own: on the concurrency pool it would hold one of its two threads and
/// starve every other test's awaits (and run ten "concurrent" clients two at a time).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        Thread { c.resume(with: Result { try body() }) }.start()
    }
}

func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { c in
        Thread { c.resume(returning: body()) }.start()
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

/// The control socket under abusive clients (a local user in the socket's
/// group can send anything): bounded heads and bodies answered at once,
/// partial and idle connections closed.
@Suite(.serialized) struct ControlSocketLimitTests {
    @Test func abusiveRequestsAreAnsweredAndClosed() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let extra = ["VTARGET_API_HEAD_TIMEOUT": "1s", "VTARGET_API_IDLE_TIMEOUT": "2s"]
        // Start the supervisor with short bounds (get starts it).
        #expect(try f.vt(["get", "instances"], extra: extra).code == 0)
        guard let pid = f.supervisorPID() else { Issue.record("no supervisor"); return }
        let socket = f.runtime + "/supervisor.sock"
        f.waitForStandby()  // its pipe and pidfd are the supervisor's: in the baseline
        let fds = procEntries(pid, "fd")
        for mode in ["normal", "unknown-path", "absurd-claim", "long-request-line", "huge-body", "partial-head", "normal"] {
            let r = try shell("\(python) \(repoRoot)/Tests/IntegrationTests/Clients/api_limits.py \(socket) \(mode)", runtime: f.runtime)
            #expect(r.code == 0, "\(mode): \(r.stdout) \(r.stderr)")
        }
        // 200 idle connections: all closed by the server within the idle timeout (and a margin).
        let r = try shell("\(python) \(repoRoot)/Tests/IntegrationTests/Clients/api_limits.py \(socket) idle 200 6", runtime: f.runtime)
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        usleep(300_000)
        #expect(procEntries(pid, "fd") <= fds + 2, "supervisor fds \(fds) → \(procEntries(pid, "fd")) after idle connections")
    }
}

/// A tenant of a shared supervisor (`serve --socket-group --policy`) cannot
/// widen its privileges or reach another namespace through what it sends.
@Suite(.serialized) struct TenantRequestTests {
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func forgedOptionsAndMismatchedRowsAreRefused() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let serve = try f.serveShared(rules: "rules:\n  - users: [65534]\n    namespaces: [team-a]\n")
        defer { serve.0.terminate(); _ = finish(serve) }
        let body = f.work + "/body.json"
        /// POSTs an apply request as uid 65534, straight to the socket (no CLI to stop it).
        func applyAsNobody(kind: String = "ConfigMap", namespace: String, name: String, yaml: String, allowHostPaths: Bool = false) throws -> RunResult {
            let request: [String: Any] = ["resources": [["kind": kind, "namespace": namespace, "name": name, "yaml": yaml, "directory": "/tmp",
                                                         "options": ["lenient": false, "allowHostPaths": allowHostPaths, "allowExtraArgs": false]]]]
            try JSONSerialization.data(withJSONObject: request).write(to: URL(fileURLWithPath: body))
            chmod(body, 0o644)
            return try shell("setpriv --reuid=65534 --regid=65534 --clear-groups \(python) -c '"
                             + "import socket,sys; b=open(\"\(body)\",\"rb\").read(); s=socket.socket(socket.AF_UNIX); s.connect(\"\(f.runtime)/supervisor.sock\"); "
                             + "s.sendall(b\"POST /v1/apply HTTP/1.1\\r\\nhost: x\\r\\ncontent-type: application/json\\r\\nconnection: close\\r\\ncontent-length: %d\\r\\n\\r\\n\" % len(b) + b); "
                             + "d=b\"\"\nwhile True:\n  c=s.recv(65536)\n  if not c: break\n  d+=c\nprint(d.decode())'", runtime: f.runtime)
        }
        let good = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: team-a\ndata:\n  a: b\n"
        var r = try applyAsNobody(namespace: "team-a", name: "cm", yaml: good)
        #expect(r.stdout.contains("HTTP/1.1 200"), "a tenant's plain apply works: \(r.stdout) \(r.stderr)")
        r = try applyAsNobody(namespace: "team-a", name: "cm", yaml: good, allowHostPaths: true)
        #expect(r.stdout.contains("HTTP/1.1 403") && r.stdout.contains("allow-host-paths"), "forged allowHostPaths: \(r.stdout)")
        // The row says team-a (allowed), its YAML says default (not allowed): refused, nothing stored in default.
        r = try applyAsNobody(namespace: "team-a", name: "cm", yaml: good.replacingOccurrences(of: "team-a", with: "default"))
        #expect(r.stdout.contains("HTTP/1.1 422") && r.stdout.contains("must agree"), "namespace mismatch: \(r.stdout)")
        r = try applyAsNobody(namespace: "team-a", name: "cm\u{0}zz", yaml: good)
        #expect(r.stdout.contains("HTTP/1.1 422") && r.stdout.contains("\\\\u{0}"), "a NUL in a name: \(r.stdout)")
        r = try applyAsNobody(kind: "Frobnicator", namespace: "team-a", name: "cm", yaml: good.replacingOccurrences(of: "ConfigMap", with: "Frobnicator"))
        #expect(r.stdout.contains("HTTP/1.1 422") && r.stdout.contains("unknown kind"), "unknown kind: \(r.stdout)")
        let stored = try f.vt(["get", "configmaps", "-A", "-o", "name"])
        #expect(stored.stdout.split(separator: "\n").count == 1, "only the good ConfigMap is stored: \(stored.stdout)")
    }
}

/// The state database and the live shims never disagree silently.
@Suite(.serialized) struct StateDatabaseTests {
    @Test func aCleanStopLeavesEverythingInTheDatabaseFile() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        var r = try f.vt(["apply", "-f", f.targets(["wal0", "wal1"]), "-f", f.firmwareMap])
        #expect(r.code == 0, "\(r.stderr)")
        try f.waitFor("two Ready", f.allReady(2))
        r = try f.vt(["daemon", "stop"])
        #expect(r.code == 0, "\(r.stderr)")
        let wal = f.state + "/state.sqlite-wal"
        let walSize = (try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0
        #expect(walSize == 0, "the WAL still holds \(walSize) bytes after a clean stop")
        // Losing the WAL now loses nothing: the next supervisor re-adopts both.
        try? FileManager.default.removeItem(atPath: wal)
        try? FileManager.default.removeItem(atPath: f.state + "/state.sqlite-shm")
        let items = try f.waitFor("both re-adopted", f.allReady(2))
        #expect(Set(items.map(f.name)) == ["wal0", "wal1"])
        #expect(try f.vt(["events"]).stdout.contains("re-adopted"))
    }

    /// After a SIGKILL, eight CLI calls at once: one starts the supervisor,
    /// the others wait for it (while it re-adopts) instead of failing.
    @Test func concurrentCallsAfterACrashWaitForTheSupervisorStarting() async throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let names = (0..<6).map { "crash\($0)" }
        var r = try f.vt(["apply", "-f", f.targets(names), "-f", f.firmwareMap])
        #expect(r.code == 0, "\(r.stderr)")
        try f.waitFor("six Ready", f.allReady(6))
        if let pid = f.supervisorPID() { kill(pid, SIGKILL) }
        usleep(100_000)
        let results = try await withThrowingTaskGroup(of: RunResult.self) { group in
            for _ in 0..<8 { group.addTask { try await onThread { try f.vt(["get", "instances"]) } } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for res in results { #expect(res.code == 0 && res.stdout.contains("crash5"), "\(res.code) \(res.stderr)") }
        r = try f.vt(["events"])
        #expect(r.stdout.components(separatedBy: "re-adopted").count - 1 == 6, "\(r.stdout)")
    }

    @Test func shimsTheDatabaseDoesNotKnowAreStoppedNotLeftRunning() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        var r = try f.vt(["apply", "-f", f.targets(["orphan0"]), "-f", f.firmwareMap])
        #expect(r.code == 0, "\(r.stderr)")
        try f.waitFor("Ready", f.allReady(1))
        // A crash, and a database that lost its rows (a fresh one in its place).
        if let pid = f.supervisorPID() { kill(pid, SIGKILL) }
        usleep(200_000)
        for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: f.state + "/state.sqlite" + s) }
        #expect(f.shims().count == 1)
        r = try f.vt(["get", "instances"])
        #expect(r.code == 0, "\(r.stderr)")
        var left: [Int32] = []
        for _ in 0..<50 {
            left = f.shims() + qemuProcesses(mentioning: f.runtime)
            if left.isEmpty { break }
            usleep(100_000)
        }
        #expect(left.isEmpty, "shims or QEMUs with no row still run: \(left)")
        let log = (try? String(contentsOfFile: f.state + "/supervisor.log", encoding: .utf8)) ?? ""
        #expect(log.contains("is in no row of the state database"), "\(log)")
    }
}

/// A stopping supervisor ends its open event streams instead of waiting on them.
@Suite(.serialized) struct SupervisorShutdownTests {
    @Test func daemonStopEndsWatchersAndTheSupervisor() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        #expect(try f.vt(["get", "instances"]).code == 0)
        guard let pid = f.supervisorPID() else { Issue.record("no supervisor"); return }
        let watcher = try launch(["events", "-w"], runtime: f.runtime, environment: f.environment)
        let getWatcher = try launch(["get", "instances", "-w"], runtime: f.runtime, environment: f.environment)
        usleep(500_000)
        let r = try f.vt(["daemon", "stop"])
        #expect(r.code == 0, "\(r.stderr)")
        var alive = true
        for _ in 0..<50 where alive {
            alive = kill(pid, 0) == 0
            if alive { usleep(100_000) }
        }
        #expect(!alive, "the supervisor still runs 5 s after daemon stop with watchers connected")
        for w in [watcher, getWatcher] {
            if w.0.isRunning { w.0.terminate() }
            _ = finish(w)
        }
    }
}

/// A tenant's sidecars run as the tenant (not as the root supervisor), with
/// none of the supervisor's environment, and all they start ends with the instance.
@Suite(.serialized) struct TenantSidecarTests {
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func sidecarsRunAsTheTenantWithACleanEnvironment() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let serve = try f.serveShared(rules: "rules:\n  - users: [65534]\n    namespaces: [team-a]\n", extra: ["VTARGET_TEST_SECRET": "hunter2"])
        defer { serve.0.terminate(); _ = finish(serve) }
        let work = "/tmp/vt-tenant-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        chmod(work, 0o777)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let marker = "vt-grandchild-\(UInt32.random(in: 0...UInt32.max))"
        let firmwareMap = try String(contentsOfFile: f.firmwareMap, encoding: .utf8)
            .replacingOccurrences(of: "metadata:\n", with: "metadata:\n  namespace: team-a\n")
        try firmwareMap.write(toFile: work + "/fw.yaml", atomically: true, encoding: .utf8)
        try """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: tenant, namespace: team-a}
            spec:
              qemuConfig:
                machine: lm3s6965evb
                drives: [{name: firmware, type: pflash, source: {configMap: {name: lm3s6965evb-firmware}}}]
                devices: [{name: uart0, type: serial}]
              readiness: {device: uart0, pattern: "echo ready", timeout: 30s}
              sidecars:
                - name: probe
                  role: helper
                  command: ["sh", "-c", "echo uid=$(id -u); cat /etc/shadow >/dev/null 2>&1 && echo shadow=read || echo shadow=denied; env; printf 'ping\\\\r' | socat -t 2 - UNIX-CONNECT:$VTARGET_SERIAL_UART0; (exec -a \(marker) sleep 300 &); sleep 300"]
            """.write(toFile: work + "/tenant.yaml", atomically: true, encoding: .utf8)
        for file in ["fw.yaml", "tenant.yaml"] { chmod(work + "/" + file, 0o644) }
        let asNobody = "setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin HOME=/tmp VTARGET_RUNTIME_DIR=\(f.runtime) VTARGET_STATE_DIR=/tmp/vt-nobody-state \(vtarget)"
        var r = try shell("\(asNobody) apply -f \(work)/fw.yaml -f \(work)/tenant.yaml", runtime: f.runtime)
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        let log = f.runtime + "/ns-team-a/tenant/logs/sidecar-probe.log"
        var text = ""
        for _ in 0..<150 {
            text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if text.contains("pong") { break }
            usleep(100_000)
        }
        #expect(text.contains("uid=65534"), "the sidecar is not the tenant: \(text)")
        #expect(text.contains("shadow=denied"), "\(text)")
        #expect(!text.contains("hunter2"), "the supervisor's environment reached a tenant's sidecar")
        #expect(text.contains("pong"), "the tenant's sidecar cannot reach its own instance's serial port: \(text)")
        #expect(!processes { $0.contains(marker) }.isEmpty, "the sidecar's own child runs")
        r = try shell("\(asNobody) delete -f \(work)/tenant.yaml", runtime: f.runtime)
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        var left: [Int32] = []
        for _ in 0..<50 {
            left = processes { $0.contains(marker) }
            if left.isEmpty { break }
            usleep(100_000)
        }
        #expect(left.isEmpty, "a sidecar's grandchild outlived the delete: \(left)")
        _ = try shell("\(asNobody) delete -f \(work)/fw.yaml", runtime: f.runtime)
    }
}
