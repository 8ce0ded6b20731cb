#if canImport(FoundationEssentials)
import InstanceContract
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import GRDB
import MachineCatalog
import Sandbox
import TargetRuntime
import TargetSpec
import YAMLTree

/// Errors of the supervisor, each with the HTTP status the API answers with.
public struct SupervisorError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var description: String { message }

    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }

    static func notFound(_ what: String) -> SupervisorError { SupervisorError(404, what + " not found") }
    static func storage(_ error: any Error) -> SupervisorError { SupervisorError(500, "state database: \(error)") }
}

public struct SupervisorOptions: Sendable {
    public var environment: [String: String]
    /// The vtarget binary: each instance runs as `vtarget run` for one instance (its shim).
    public var executable: String
    public var sandbox: Bool
    /// First restart delay; doubles per restart up to `backoffCap`.
    public var backoffBase: Double
    public var backoffCap: Double

    public init(environment: [String: String], executable: String, sandbox: Bool = true,
                backoffBase: Double = 1, backoffCap: Double = 60) {
        self.environment = environment
        self.executable = executable
        self.sandbox = sandbox
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
    }
}

/// The per-user supervisor: applied resources and instances in SQLite, one
/// shim (`vtarget run` for one instance, detached) per running instance.
///
/// A shim owns its QEMU (which dies with it), serves the instance's
/// endpoints and enforces its TTL, so none of that stops when the
/// supervisor does: after a SIGKILL the next supervisor re-adopts every
/// shim (pid, start time and executable verified) and the sockets clients
/// hold never went away. The supervisor decides what runs (apply, delete,
/// start, stop, restart policy) and records what happened.
public actor Supervisor {
    let paths: SupervisorPaths
    let options: SupervisorOptions
    let catalog: MachineCatalog
    let store: StateStore
    let statusWatcher = StatusWatcher()
    public nonisolated let startedAt = ShimStatus.now

    /// Shims this supervisor spawned (children, reaped by their own thread)
    /// or adopted (watched through a pidfd), by "namespace/name".
    var shims: [String: Shim] = [:]
    /// Exit watches and restart timers: owned here, cancelled on delete and
    /// stop. They are unstructured on purpose: each outlives the request that
    /// made it, and a task group would make the supervisor wait for processes
    /// it means to leave running when it stops.
    var watchers: [String: Task<Void, Never>] = [:]
    var restartTimers: [String: Task<Void, Never>] = [:]
    private var subscribers: [Int: AsyncStream<EventInfo>.Continuation] = [:]
    /// Pools by "namespace/name", as last applied; claim timers by instance key.
    var poolTemplates: [String: PoolTemplate] = [:]
    var claimTimers: [String: Task<Void, Never>] = [:]
    /// The refill after a claim, which the claim does not wait for.
    var topUps: [String: Task<Void, Never>] = [:]
    /// Bumped by every instance change; claims waiting on an empty pool wake on it.
    var changes = 0
    var changeWaiters: [CheckedContinuation<Void, Never>] = []
    private var nextSubscriber = 0
    public private(set) var adopted = 0

    struct Shim {
        var uid: String
        var identity: ProcessIdentity
        var child: ChildProcess?
    }

    public init(paths: SupervisorPaths, options: SupervisorOptions, catalog: MachineCatalog) throws {
        self.paths = paths
        self.options = options
        self.catalog = catalog
        try RuntimeDirectory.ensurePrivate(paths.stateDirectory)
        self.store = try StateStore(path: paths.database)
    }

    /// Feeds status.json changes to the instances; runs until cancelled.
    public func watchStatusChanges() async {
        for await key in statusWatcher.changes {
            if Task.isCancelled { return }
            statusChanged(key)
        }
    }

    // MARK: - Resources

    /// Stores the resources (one transaction) and brings instances in line:
    /// new ones start, changed ones restart, unchanged ones are left alone.
    public func apply(_ request: ApplyRequest) async throws(SupervisorError) -> [ObjectResult] {
        let now = ShimStatus.now
        var results: [ObjectResult] = []
        var rows: [ResourceRow] = []
        var namespaces: [String] = []
        do {
            for r in request.resources {
                let existing = try store.read { try ResourceRow.fetchOne($0, key: ["kind": r.kind, "namespace": r.namespace, "name": r.name]) }
                var row = ResourceRow(kind: r.kind, namespace: r.namespace, name: r.name, yaml: r.yaml, directory: r.directory,
                                      options: r.options, createdAt: existing?.createdAt ?? now, updatedAt: now)
                let action: String
                if let existing, existing.yaml == r.yaml, existing.directory == r.directory, existing.options == r.options {
                    action = "unchanged"
                    row.updatedAt = existing.updatedAt
                } else {
                    action = existing == nil ? "created" : "configured"
                }
                rows.append(row)
                results.append(ObjectResult(kind: r.kind, namespace: r.namespace, name: r.name, action: action))
                if !namespaces.contains(r.namespace) { namespaces.append(r.namespace) }
            }
        } catch { throw .storage(error) }
        // Check the namespaces as they would be before storing anything.
        var plans: [String: DesiredState] = [:]
        for ns in namespaces {
            var all = (try? store.resources(namespace: ns)) ?? []
            for row in rows where row.namespace == ns {
                all.removeAll { $0.kind == row.kind && $0.name == row.name }
                all.append(row)
            }
            plans[ns] = try desiredInstances(all)
        }
        do {
            try store.write { db in
                for (row, result) in zip(rows, results) where result.action != "unchanged" { try row.save(db) }
            }
        } catch { throw .storage(error) }
        for ns in namespaces { await reconcile(namespace: ns, desired: plans[ns] ?? DesiredState()) }
        return results
    }

    public func delete(kind: String, namespace: String, name: String) async throws(SupervisorError) -> ObjectResult {
        let row: ResourceRow?
        do { row = try store.read { try ResourceRow.fetchOne($0, key: ["kind": kind, "namespace": namespace, "name": name]) } } catch { throw .storage(error) }
        guard row != nil else { throw .notFound("\(kind) \"\(name)\" in namespace \(namespace)") }
        let rest = ((try? store.resources(namespace: namespace)) ?? []).filter { !($0.kind == kind && $0.name == name) }
        let plan: DesiredState
        do { plan = try desiredInstances(rest) } catch {
            throw SupervisorError(409, "\(kind) \"\(name)\" is still needed: \(error.message)")
        }
        do {
            _ = try store.write { try ResourceRow.deleteOne($0, key: ["kind": kind, "namespace": namespace, "name": name]) }
        } catch { throw .storage(error) }
        await reconcile(namespace: namespace, desired: plan)
        return ObjectResult(kind: kind, namespace: namespace, name: name, action: "deleted")
    }

    public func resources(kind: String?, namespace: String?) throws(SupervisorError) -> [ResourceInfo] {
        do {
            return try store.resources(namespace: namespace, kind: kind).map { r in
                ResourceInfo(kind: r.kind, namespace: r.namespace, name: r.name, yaml: r.yaml, directory: r.directory,
                             createdAt: r.createdAt, updatedAt: r.updatedAt, summary: summary(r))
            }
        } catch { throw .storage(error) }
    }

    /// The columns `get` shows beside the name.
    private func summary(_ r: ResourceRow) -> [String: String] {
        guard let docs = try? YAMLParser.parse(r.yaml, file: r.kind), let root = docs.first?.root else { return [:] }
        func at(_ node: YAMLNode, _ path: [String]) -> YAMLNode? {
            guard let key = path.first else { return node }
            guard case .mapping(let pairs) = node.content, let v = pairs.first(where: { $0.key.scalar == key })?.value else { return nil }
            return at(v, Array(path.dropFirst()))
        }
        switch r.kind {
        case "QemuVirtualTarget":
            return ["machine": at(root, ["spec", "qemuConfig", "machine"])?.scalar ?? ""]
        case "VirtualTargetInstance":
            return ["target": at(root, ["spec", "targetRef", "name"])?.scalar ?? ""]
        case "ConfigMap":
            var n = 0
            for k in ["data", "binaryData"] { if case .mapping(let p)? = at(root, [k])?.content { n += p.count } }
            return ["data": "\(n)"]
        default:
            return [:]
        }
    }

    // MARK: - Desired state

    /// One instance as the resources describe it, with the spec its shim runs.
    struct DesiredInstance {
        var namespace: String
        var name: String
        var target: String
        var machine: String
        var restartPolicy: String
        var ttlSeconds: Double?
        var spec: String
        var directory: String
        var options: ReadOptions
        var serialDevices: [String]
        var canBuses: [String]
        var hash: String
    }

    /// Decodes a namespace's resources and works out its instances; what
    /// would not run (a missing target or ConfigMap) is an error here, so an
    /// apply or delete that breaks a namespace is refused whole.
    func desiredInstances(_ rows: [ResourceRow]) throws(SupervisorError) -> DesiredState {
        var resources: [Resource] = []
        var problems: [String] = []
        var byKey: [String: ResourceRow] = [:]
        for r in rows {
            byKey[r.kind + "/" + r.name] = r
            let decoder = ResourceDecoder(catalog: catalog, options: DecodeOptions(
                strict: !r.options.lenient, allowHostPaths: r.options.allowHostPaths, allowExtraArgs: r.options.allowExtraArgs))
            do {
                resources += try decoder.decode([SourceFile(path: "\(r.kind) \(r.namespace)/\(r.name)", directory: r.directory, bytes: Array(r.yaml.utf8))]).resources
            } catch {
                problems.append(error.description)
            }
        }
        if !problems.isEmpty { throw SupervisorError(422, problems.joined(separator: "\n")) }
        let runnables: [RunnableTarget]
        do { runnables = try Workload.instances(from: resources) } catch {
            throw SupervisorError(422, error.diagnostics.map { d in
                (d.field.map { $0 + ": " } ?? "") + d.message + (d.location.map { " (in \($0.file))" } ?? "")
            }.joined(separator: "\n"))
        }
        /// The spec a shim runs: the instance (if any), its target, the target's ConfigMaps.
        func compose(_ name: String, _ namespace: String, _ target: QemuVirtualTarget, _ lifecycle: Lifecycle,
                     instanceDoc: String?) -> DesiredInstance? {
            guard let targetRow = byKey["QemuVirtualTarget/" + target.metadata.name] else { return nil }
            var docs: [String] = instanceDoc.map { [$0] } ?? []
            docs.append(targetRow.yaml)
            var maps: [String] = []
            for d in target.qemu.drives {
                if case .configMap(let map, _) = d.source, let cm = byKey["ConfigMap/" + map], !maps.contains(map) {
                    maps.append(map)
                    docs.append(cm.yaml)
                }
            }
            let spec = docs.joined(separator: "---\n")
            let serial = target.qemu.devices.compactMap { d -> String? in
                if case .serial = d.kind { return d.name }
                return nil
            }
            var buses: [String] = []
            for d in target.qemu.devices { if case .can(let bus, _) = d.kind, !buses.contains(bus) { buses.append(bus) } }
            let o = targetRow.options
            let hash = Self.fingerprint(spec + "\u{0}" + targetRow.directory + "\u{0}\(o.lenient)\(o.allowHostPaths)\(o.allowExtraArgs)")
            return DesiredInstance(namespace: namespace, name: name, target: target.metadata.name,
                                   machine: target.qemu.machine.value, restartPolicy: (lifecycle.restartPolicy ?? .Never).rawValue,
                                   ttlSeconds: lifecycle.ttlSeconds, spec: spec, directory: targetRow.directory,
                                   options: o, serialDevices: serial, canBuses: buses, hash: hash)
        }
        var state = DesiredState()
        state.instances = runnables.compactMap { rn in
            compose(rn.name, rn.namespace, rn.target, rn.lifecycle, instanceDoc: byKey["VirtualTargetInstance/" + rn.name]?.yaml)
        }
        for case .pool(let p) in resources {
            guard case .target(let t)? = resources.first(where: {
                if case .target(let t) = $0 { return t.metadata.name == p.targetName }
                return false
            }), var template = compose("", p.metadata.namespace, t, t.lifecycle, instanceDoc: nil) else { continue }
            // Members restart on failure: a pool keeps its targets warm.
            template.restartPolicy = "OnFailure"
            template.hash = Self.fingerprint(template.hash + p.recycle.rawValue)
            let snapshots = p.recycle == .snapshot && (catalog.lookup(t.qemu.profileName)?.snapshots ?? false)
            state.pools.append(PoolTemplate(pool: p, member: template, snapshots: snapshots))
        }
        return state
    }

    struct PoolTemplate {
        var pool: VirtualTargetPool
        /// A member's desired instance, its name left empty.
        var member: DesiredInstance
        /// Release restores the `vt-ready` snapshot (else restarts the member).
        var snapshots: Bool
    }

    struct DesiredState {
        var instances: [DesiredInstance] = []
        var pools: [PoolTemplate] = []
    }

    /// FNV-1a, 64 bits: tells a changed spec from an unchanged one.
    static func fingerprint(_ s: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return String(h, radix: 16)
    }

    /// Starts what is new, restarts what changed, stops and forgets what is gone.
    func reconcile(namespace: String, desired state: DesiredState) async {
        let desired = state.instances
        let current = (try? store.instances(namespace: namespace)) ?? []
        let wanted = Set(desired.map(\.name))
        let pools = Set(state.pools.map(\.pool.metadata.name))
        for row in current where row.pool == nil ? !wanted.contains(row.name) : !pools.contains(row.pool!) {
            await removeInstance(row)
        }
        poolTemplates = poolTemplates.filter { $0.key.hasPrefix(namespace + "/") == false }
        for p in state.pools { poolTemplates[namespace + "/" + p.pool.metadata.name] = p }
        for p in state.pools { await topUp(namespace: namespace, pool: p.pool.metadata.name) }
        for d in desired {
            let now = ShimStatus.now
            if let row = current.first(where: { $0.name == d.name && $0.pool == nil }) {
                guard row.specHash != d.hash else { continue }
                await restart(row.key, message: "the spec changed; restarting with the new one", spec: d.spec,
                              event: ("SpecChanged", "spec changed (\(row.specHash) → \(d.hash))")) { fresh in
                    fresh.update(from: d)
                    fresh.backoffStep = 0
                    fresh.expiresAt = d.ttlSeconds.map { now + $0 }
                }
            } else {
                await create(d, pool: nil)
            }
        }
    }

    /// A new instance row (Pending), then its start.
    func create(_ d: DesiredInstance, pool: String?) async {
        let now = ShimStatus.now
        var row = InstanceRow(namespace: d.namespace, name: d.name, uid: "", target: d.target, machine: d.machine,
                              restartPolicy: d.restartPolicy, specHash: d.hash, specDirectory: d.directory,
                              options: d.options, serialDevices: d.serialDevices, ttlSeconds: d.ttlSeconds,
                              desired: "running", phase: .pending, ready: false, createdAt: now,
                              expiresAt: d.ttlSeconds.map { now + $0 }, stderrTail: [], restarts: 0, backoffStep: 0)
        row.update(from: d)
        row.pool = pool
        commit(row, [event("Normal", row, "Created", (pool.map { "member of pool \($0): " } ?? "") + "instance of \(d.target) on \(d.machine)")], spec: d.spec)
        await startInstance(row.key)
    }

    // MARK: - Instances

    public func instances(namespace: String?) throws(SupervisorError) -> [InstanceInfo] {
        do { return try store.instances(namespace: namespace).map(info) } catch { throw .storage(error) }
    }

    public func describe(namespace: String, name: String) throws(SupervisorError) -> InstanceDescription {
        let row: InstanceRow?
        do { row = try store.instance(namespace, name) } catch { throw .storage(error) }
        guard let row else { throw .notFound("instance \"\(name)\" in namespace \(namespace)") }
        let events = ((try? store.events(namespace: namespace, name: name, limit: 50)) ?? []).map(\.info)
        return InstanceDescription(instance: info(row), events: events)
    }

    public func events(namespace: String?, after id: Int64) throws(SupervisorError) -> [EventInfo] {
        do { return try store.events(namespace: namespace, after: id).map(\.info) } catch { throw .storage(error) }
    }

    /// New events as they are recorded, until the stream is dropped.
    public func subscribe() -> (Int, AsyncStream<EventInfo>) {
        let (stream, sink) = AsyncStream<EventInfo>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        nextSubscriber += 1
        subscribers[nextSubscriber] = sink
        return (nextSubscriber, stream)
    }

    public func unsubscribe(_ id: Int) {
        subscribers.removeValue(forKey: id)?.finish()
    }

    public func status() -> DaemonStatus {
        let all = (try? store.instances()) ?? []
        return DaemonStatus(pid: getpid(), version: "0.1.0", startedAt: startedAt, socket: paths.socket,
                            stateDirectory: paths.stateDirectory, instances: all.count,
                            running: all.filter { $0.phase == .running }.count, adopted: adopted)
    }

    /// `vtarget start`: wanted again, with a fresh TTL and backoff.
    public func start(namespace: String, name: String) async throws(SupervisorError) -> ObjectResult {
        guard var row = try? store.instance(namespace, name) else { throw .notFound("instance \"\(name)\" in namespace \(namespace)") }
        let result = ObjectResult(kind: "VirtualTargetInstance", namespace: namespace, name: name, action: row.isActive ? "unchanged" : "started")
        guard !row.isActive || row.desired != "running" else { return result }
        restartTimers.removeValue(forKey: row.key)?.cancel()
        row.desired = "running"
        row.backoffStep = 0
        row.nextRestartAt = nil
        if let ttl = row.ttlSeconds, (row.expiresAt ?? 0) <= ShimStatus.now { row.expiresAt = ShimStatus.now + ttl }
        commit(row, event("Normal", row, "StartRequested", "started by request"))
        if !row.isActive || row.phase == .pending { await startInstance(row.key) }
        return ObjectResult(kind: "VirtualTargetInstance", namespace: namespace, name: name, action: "started")
    }

    /// `vtarget stop`: stays stopped (no restart policy) until started again.
    public func stop(namespace: String, name: String) async throws(SupervisorError) -> ObjectResult {
        guard var row = try? store.instance(namespace, name) else { throw .notFound("instance \"\(name)\" in namespace \(namespace)") }
        restartTimers.removeValue(forKey: row.key)?.cancel()
        row.desired = "stopped"
        row.nextRestartAt = nil
        commit(row, event("Normal", row, "StopRequested", "stopped by request"))
        await stopShim(row.key, message: "stopped by request")
        return ObjectResult(kind: "VirtualTargetInstance", namespace: namespace, name: name, action: "stopped")
    }

    /// Stops every instance (for `daemon stop --stop-instances`).
    public func stopAll() async {
        for row in (try? store.instances()) ?? [] where row.isActive {
            _ = try? await stop(namespace: row.namespace, name: row.name)
        }
    }

    func removeInstance(_ row: InstanceRow) async {
        restartTimers.removeValue(forKey: row.key)?.cancel()
        if var r = try? store.instance(row.namespace, row.name) {
            r.desired = "stopped"
            commit(r)
        }
        await stopShim(row.key, message: "deleted")
        statusWatcher.unwatch(key: row.key)
        do {
            let ev = event("Normal", row, "Deleted", "instance deleted")
            var stored = ev
            try store.write { db in
                _ = try InstanceRow.deleteOne(db, key: ["namespace": row.namespace, "name": row.name])
                _ = try InstanceSpecRow.deleteOne(db, key: ["namespace": row.namespace, "name": row.name])
                try stored.insert(db)
            }
            publish([stored])
        } catch {
            log("cannot delete \(row.key): \(error)")
        }
        RuntimeDirectory.removeTree(paths.instanceState(namespace: row.namespace, name: row.name).directory)
    }

    /// Spawns the shim for an instance that should run: its pid and start
    /// time are committed before it may begin (it waits for a byte on stdin),
    /// so a supervisor killed at any point never leaves a shim it does not know.
    func startInstance(_ key: String) async {
        let (namespace, name) = split(key)
        guard var row = try? store.instance(namespace, name), row.desired == "running", shims[key] == nil else { return }
        let now = ShimStatus.now
        if let expires = row.expiresAt, expires <= now {
            row.phase = .expired
            row.reason = .ttlExpired
            row.message = "the TTL had passed before it could start"
            row.finishedAt = now
            commit(row, event("Normal", row, "Expired", row.message!))
            return
        }
        let state = paths.instanceState(namespace: namespace, name: name)
        let stateDir = state.directory, specPath = state.specFile, statusPath = state.statusFile
        do {
            try makeDirectories(stateDir)
            guard let spec = try store.spec(namespace, name),
                  FileManager.default.createFile(atPath: specPath, contents: Data(spec.utf8)) else {
                throw RuntimeError("cannot write \(specPath)")
            }
            unlink(statusPath)
            statusWatcher.watch(stateDir, key: key)
            let log = open(state.shimLog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            defer { if log >= 0 { close(log) } }
            let (goRead, goWrite) = try makePipe()
            CrashPoint.hit("before-spawn")
            var shim = ShimArguments(instance: key, specFile: specPath, statusFile: statusPath, relativeTo: row.specDirectory)
            shim.lenient = row.options.lenient
            shim.allowHostPaths = row.options.allowHostPaths
            shim.allowExtraArgs = row.options.allowExtraArgs
            shim.sandbox = options.sandbox
            shim.poolSnapshot = row.pool.map { poolTemplates[namespace + "/" + $0]?.snapshots == true } ?? false
            shim.ttlMilliseconds = row.expiresAt.map { max(1, Int(($0 - now) * 1000)) }
            let args = shim.arguments()
            let child: ChildProcess
            do {
                child = try await ChildProcess.spawn(SpawnRequest(
                    executable: options.executable, arguments: args,
                    environment: options.environment.map { "\($0.key)=\($0.value)" }, workingDirectory: stateDir,
                    fds: [goRead, log, log], newSession: true, parentDeathSignal: 0))
            } catch {
                close(goRead)
                close(goWrite)
                throw error
            }
            close(goRead)
            CrashPoint.hit("after-spawn")
            let identity = ProcessIdentity.of(child.pid) ?? ProcessIdentity(pid: child.pid, startTime: 0)
            row.uid = Self.newUID()
            row.shimPID = child.pid
            row.shimStartTime = Int64(identity.startTime)
            row.phase = .starting
            row.reason = nil
            row.message = nil
            row.ready = false
            row.readyAt = nil
            row.qemuPID = nil
            row.startedAt = nil
            row.finishedAt = nil
            row.exitCode = nil
            row.signal = nil
            row.stderrTail = []
            row.nextRestartAt = nil
            commit(row, event("Normal", row, "Starting", "starting on \(row.machine) (shim pid \(child.pid))"))
            shims[key] = Shim(uid: row.uid, identity: identity, child: child)
            CrashPoint.hit("after-commit")
            var go: UInt8 = 0x67
            _ = write(goWrite, &go, 1)
            close(goWrite)
            CrashPoint.hit("after-go")
            let uid = row.uid
            watchers[key] = Task {
                let status = await child.waitForExit()
                await self.shimExited(key, uid: uid, status: status)
            }
        } catch {
            row.phase = .failed
            row.reason = .startFailed
            row.message = "\(error)"
            row.finishedAt = now
            commit(row, event("Warning", row, "StartFailed", "\(error)"))
        }
    }

    /// A status.json change: Running and Ready as the shim reports them.
    func statusChanged(_ key: String) {
        let (namespace, name) = split(key)
        guard var row = try? store.instance(namespace, name), row.phase == .starting || row.phase == .running,
              let st = ShimStatus.read(paths.instanceState(namespace: namespace, name: name).statusFile),
              !st.isFinished else { return }
        var events: [EventRow] = []
        if st.phase == .running && row.phase == .starting {
            row.phase = .running
            row.startedAt = st.startedAt
            row.qemuPID = st.qemuPID
            events.append(event("Normal", row, "Started", "QEMU pid \(st.qemuPID.map(String.init) ?? "?") running", at: st.startedAt))
        }
        if st.snapshot == true && !row.snapshot {
            row.snapshot = true
            events.append(event("Normal", row, "Snapshotted", "savevm vt-ready: a release restores this state"))
        }
        if st.ready && !row.ready {
            row.ready = true
            row.readyAt = st.readyAt
            events.append(event("Normal", row, "Ready", "readiness reached", at: st.readyAt))
        }
        if !events.isEmpty { commit(row, events) }
    }

    /// The shim ended: record how (from its status file, else from its exit),
    /// clean up, and apply the restart policy.
    func shimExited(_ key: String, uid: String, status: ExitStatus?) {
        watchers[key] = nil
        guard let shim = shims[key], shim.uid == uid else { return }
        shims[key] = nil
        let (namespace, name) = split(key)
        guard var row = try? store.instance(namespace, name), row.uid == uid else { return }
        let now = ShimStatus.now
        let st = ShimStatus.read(paths.instanceState(namespace: namespace, name: name).statusFile)
        if let st, st.isFinished {
            row.phase = st.phase
            row.reason = st.reason
            row.message = st.message
            row.exitCode = st.exitCode
            row.signal = st.signal
            row.stderrTail = st.stderrTail ?? []
            row.startedAt = row.startedAt ?? st.startedAt
        } else {
            row.phase = .failed
            row.reason = .shimDied
            row.message = "the instance's vtarget run ended (\(status.map { "\($0)" } ?? "while the supervisor was down")) without reporting; its QEMU died with it"
            if case .signalled(let s)? = status { row.signal = s }
        }
        row.finishedAt = st?.finishedAt ?? now
        row.shimPID = nil
        row.shimStartTime = nil
        row.qemuPID = nil
        row.ready = false
        row.snapshot = false
        RuntimeDirectory.removeTree(paths.instance(namespace: namespace, name: name).directory)
        var events = [event(row.phase == .failed ? "Warning" : "Normal", row, row.phase == .expired ? "Expired" : (row.reason?.rawValue ?? row.phase.rawValue),
                            (row.message ?? row.phase.rawValue) + (row.stderrTail.isEmpty ? "" : "; QEMU said: " + row.stderrTail.suffix(3).joined(separator: " | ")))]
        if let delay = restartDelay(&row) {
            row.nextRestartAt = now + delay
            events.append(event("Normal", row, "BackOff", "restarting in \(Self.format(delay)) (restart \(row.restarts + 1), policy \(row.restartPolicy))"))
            scheduleRestart(key, uid: row.uid, after: delay)
        }
        commit(row, events)
    }

    /// Whether the restart policy restarts this finished instance, and after how long.
    func restartDelay(_ row: inout InstanceRow) -> Double? {
        guard row.desired == "running", row.phase != .expired, row.reason != .stopped else { return nil }
        switch row.restartPolicy {
        case "Always": break
        case "OnFailure": guard row.phase == .failed else { return nil }
        default: return nil
        }
        // A run that lasted a minute starts the backoff over.
        if let started = row.startedAt, let finished = row.finishedAt, finished - started >= 60 { row.backoffStep = 0 }
        let delay = min(options.backoffCap, options.backoffBase * pow(2, Double(row.backoffStep)))
        row.backoffStep += 1
        return delay
    }

    /// Stops the shim and starts the instance again, wanted, with `change`
    /// (and the new spec, and an event) committed in between.
    func restart(_ key: String, message: String, spec: String? = nil, event reasonAndMessage: (String, String)? = nil,
                 _ change: (inout InstanceRow) -> Void = { _ in }) async {
        await stopShim(key, message: message)
        let (namespace, name) = split(key)
        guard var fresh = try? store.instance(namespace, name) else { return }
        restartTimers.removeValue(forKey: key)?.cancel()
        fresh.desired = "running"
        fresh.nextRestartAt = nil
        change(&fresh)
        commit(fresh, reasonAndMessage.map { [event("Normal", fresh, $0.0, $0.1)] } ?? [], spec: spec)
        await startInstance(key)
    }

    func scheduleRestart(_ key: String, uid: String, after delay: Double) {
        restartTimers[key] = Task {
            try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            if !Task.isCancelled { await self.restartDue(key, uid: uid) }
        }
    }

    private func restartDue(_ key: String, uid: String) async {
        restartTimers[key] = nil
        let (namespace, name) = split(key)
        guard var row = try? store.instance(namespace, name), row.uid == uid, row.nextRestartAt != nil, row.desired == "running" else { return }
        row.restarts += 1
        row.nextRestartAt = nil
        commit(row, event("Normal", row, "Restarting", "restart \(row.restarts) (policy \(row.restartPolicy))"))
        await startInstance(key)
    }

    /// Stops a running shim: SIGTERM (it stops QEMU gently, then removes its
    /// sockets), SIGKILL after 20 s; returns once its end is recorded.
    func stopShim(_ key: String, message: String) async {
        guard let shim = shims[key] else { return }
        let (namespace, name) = split(key)
        if var row = try? store.instance(namespace, name), row.isActive {
            row.phase = .terminating
            commit(row, event("Normal", row, "Stopping", message))
        }
        let watcher = watchers[key]
        send(SIGTERM, to: shim)
        let done = await withDeadline(20) { await watcher?.value }
        if done == nil {
            send(SIGKILL, to: shim)
            await watcher?.value
        }
    }

    func send(_ signal: Int32, to shim: Shim) {
        if let child = shim.child {
            child.signal(signal)
        } else {
            _ = signalProcess(pid: shim.identity.pid, startTime: shim.identity.startTime,
                              currentStartTime: InstanceRecord.startTime(of:), signal: signal)
        }
    }

    // MARK: - Recovery

    /// After a start (or a crash): every instance the database says is
    /// active is re-adopted when its shim is still that process and got as
    /// far as Running; a shim caught half-started is killed; one that ended
    /// meanwhile is recorded with what its status file says. Then whatever
    /// should run and does not is started or scheduled.
    public func recover() async {
        // Each namespace's desired state, decoded once: pools are needed
        // before any start below, the rest for the reconcile at the end.
        let resources = (try? store.resources(namespace: nil)) ?? []
        var states: [String: DesiredState] = [:]
        for ns in Set(resources.map(\.namespace)) {
            if let state = try? desiredInstances(resources.filter { $0.namespace == ns }) {
                states[ns] = state
                for p in state.pools { poolTemplates[ns + "/" + p.pool.metadata.name] = p }
            }
        }
        let rows = (try? store.instances()) ?? []
        for row in rows { if let expires = row.claimExpiresAt { scheduleClaimExpiry(row.key, at: expires) } }
        let ownExecutable = options.executable
        for var row in rows {
            let state = paths.instanceState(namespace: row.namespace, name: row.name)
            guard row.isActive, let pid = row.shimPID, let start = row.shimStartTime else {
                if row.desired == "running" && row.phase == .pending { await startInstance(row.key) }
                else if let next = row.nextRestartAt, row.desired == "running" {
                    scheduleRestart(row.key, uid: row.uid, after: max(0, next - ShimStatus.now))
                }
                continue
            }
            let identity = ProcessIdentity(pid: pid, startTime: UInt64(start))
            let alive = identity.isAlive && identity.executable == ownExecutable
            let st = ShimStatus.read(state.statusFile)
            if alive, let st, !st.isFinished, st.phase == .running {
                shims[row.key] = Shim(uid: row.uid, identity: identity, child: nil)
                statusWatcher.watch(state.directory, key: row.key)
                adopted += 1
                commit(row, event("Normal", row, "Adopted", "re-adopted shim pid \(pid) (QEMU pid \(st.qemuPID.map(String.init) ?? "?"))"))
                let key = row.key, uid = row.uid
                watchers[key] = Task {
                    await identity.waitForExit()
                    await self.shimExited(key, uid: uid, status: nil)
                }
                statusChanged(key)
                continue
            }
            shims[row.key] = Shim(uid: row.uid, identity: identity, child: nil)
            if alive {
                // Half-started: its QEMU may not be fully wired; never adopt that.
                _ = signalProcess(pid: pid, startTime: UInt64(start), currentStartTime: InstanceRecord.startTime(of:), signal: SIGKILL)
                await identity.waitForExit()
                // The supervisor's failure, not the instance's: start it again.
                shims[row.key] = nil
                RuntimeDirectory.removeTree(paths.instance(namespace: row.namespace, name: row.name).directory)
                row.phase = .pending
                row.shimPID = nil
                row.shimStartTime = nil
                commit(row, event("Warning", row, "HalfStarted",
                                  "the supervisor stopped while this instance was starting; killed rather than adopted, starting it again"))
                await startInstance(row.key)
            } else if st == nil {
                // It never began: the supervisor died before giving it the go.
                shims[row.key] = nil
                row.phase = .pending
                row.shimPID = nil
                row.shimStartTime = nil
                commit(row, event("Normal", row, "NeverStarted", "the supervisor stopped before this instance began; starting it"))
                await startInstance(row.key)
            } else {
                if st?.isFinished != true {
                    log("\(row.key): shim pid \(pid) is gone and left no final status")
                }
                shimExited(row.key, uid: row.uid, status: nil)
            }
        }
        // Bring every namespace in line with its resources: an instance whose
        // resource was deleted just before a crash goes now, pools refill.
        // A namespace with no resources left wants nothing; one that failed to decode is left alone.
        let active = (try? store.instances()) ?? []
        for ns in Set(resources.map(\.namespace)).union(active.map(\.namespace)).sorted() {
            let hasResources = resources.contains { $0.namespace == ns }
            if let state = states[ns] ?? (hasResources ? nil : DesiredState()) {
                await reconcile(namespace: ns, desired: state)
            }
        }
        // Directories of instances nobody knows (a crash between the two
        // removals of a delete) are removed.
        let base = paths.runtimeDirectory
        for ns in ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []) where ns.hasPrefix("ns-") {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: base + "/" + ns)) ?? [] {
                let key = String(ns.dropFirst(3)) + "/" + name
                if !rows.contains(where: { $0.key == key && $0.isActive }) { RuntimeDirectory.removeTree(base + "/" + ns + "/" + name) }
            }
        }
    }

    // MARK: - Helpers

    func info(_ row: InstanceRow) -> InstanceInfo {
        var conditions = [Condition(type: "Ready", status: row.ready ? "True" : "False",
                                    reason: row.ready ? "ReadinessReached" : (row.isActive ? row.phase.rawValue : (row.reason ?? InstanceReason(row.phase.rawValue)).rawValue),
                                    message: row.ready ? nil : row.message, lastTransitionTime: row.ready ? row.readyAt : (row.finishedAt ?? row.startedAt))]
        if row.nextRestartAt != nil {
            conditions.append(Condition(type: "BackOff", status: "True", reason: "RestartPolicy", message: "restart scheduled", lastTransitionTime: row.finishedAt))
        }
        var endpoints: [String: String] = [:]
        let layout = paths.instance(namespace: row.namespace, name: row.name)
        if row.phase == .running {
            // From the spec, not the shim's instance.json: a listing of 200 reads no files.
            for d in row.serialDevices { endpoints["serial." + d] = "unix://" + layout.serialSocket(d) }
            endpoints["qmp"] = "unix://" + layout.qmpSocket
            for b in row.canBuses {
                endpoints["can." + b] = "unix://" + CANBusHost.directory(bus: b, namespace: row.namespace, base: paths.runtimeDirectory) + "/socketcand.sock"
            }
        }
        var out = InstanceInfo(namespace: row.namespace, name: row.name, uid: row.uid, target: row.target, machine: row.machine,
                            restartPolicy: row.restartPolicy, desired: row.desired, phase: row.phase.rawValue, reason: row.reason?.rawValue,
                            message: row.message, ready: row.ready, conditions: conditions, pid: row.shimPID, qemuPID: row.qemuPID,
                            createdAt: row.createdAt, startedAt: row.startedAt, expiresAt: row.expiresAt, finishedAt: row.finishedAt,
                            exitCode: row.exitCode, signal: row.signal, stderrTail: row.stderrTail, restarts: row.restarts,
                            nextRestartAt: row.nextRestartAt, directory: layout.directory, endpoints: endpoints)
        out.pool = row.pool
        out.claimedAt = row.claimedAt
        out.claimExpiresAt = row.claimExpiresAt
        return out
    }

    func event(_ type: String, _ row: InstanceRow, _ reason: String, _ message: String, at time: Double? = nil) -> EventRow {
        EventRow(id: nil, time: time ?? ShimStatus.now, namespace: row.namespace, kind: "VirtualTargetInstance",
                 name: row.name, type: type, reason: reason, message: message)
    }

    func commit(_ row: InstanceRow, _ event: EventRow) { commit(row, [event]) }

    /// The row (with its spec when it changed) and its events in one
    /// transaction, then the events to watchers.
    func commit(_ row: InstanceRow, _ events: [EventRow] = [], spec: String? = nil) {
        var stored = events
        do {
            try store.write { db in
                try row.save(db)
                if let spec { try InstanceSpecRow(namespace: row.namespace, name: row.name, spec: spec).save(db) }
                for i in stored.indices { try stored[i].insert(db) }
            }
        } catch {
            log("cannot record \(row.key): \(error)")
            return
        }
        changes += 1
        let waiters = changeWaiters
        changeWaiters = []
        for w in waiters { w.resume() }
        publish(stored)
    }

    /// Returns at the first instance change after the `seen`-th (at once when it already happened).
    func nextChange(after seen: Int) async {
        guard changes == seen else { return }
        await withCheckedContinuation { changeWaiters.append($0) }
    }

    func publish(_ events: [EventRow]) {
        for e in events { for s in subscribers.values { s.yield(e.info) } }
    }

    func split(_ key: String) -> (String, String) {
        let i = key.firstIndex(of: "/")!
        return (String(key[..<i]), String(key[key.index(after: i)...]))
    }

    func makeDirectories(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    static func newUID() -> String {
        let n = UInt64.random(in: 0...UInt64.max)
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? "\(Int(seconds))s" : String(format: "%.1fs", seconds)
    }

    nonisolated func log(_ message: String) {
        FileDescriptors.writeAll(2, Array("vtarget serve: \(message)\n".utf8))
    }
}

extension InstanceRow {
    mutating func update(from d: Supervisor.DesiredInstance) {
        target = d.target
        machine = d.machine
        restartPolicy = d.restartPolicy
        specHash = d.hash
        specDirectory = d.directory
        options = d.options
        serialDevices = d.serialDevices
        canBuses = d.canBuses
        ttlSeconds = d.ttlSeconds
    }
}

/// Test hook for "kill -9 at each start-up step": with VTARGET_CRASH_AT=STEP
/// in its environment the supervisor SIGKILLs itself at that step.
enum CrashPoint {
    static let step: String? = {
        guard let v = getenv("VTARGET_CRASH_AT") else { return nil }
        return String(cString: v)
    }()

    static func hit(_ name: String) {
        if step == name { kill(getpid(), SIGKILL) }
    }
}
