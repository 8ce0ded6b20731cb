#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import InstanceContract
import ControlAPI
import GRDB
import MachineCatalog
import Sandbox
import HostOS
import TargetRuntime
import TargetSpec
import YAMLTree

/// Errors of the supervisor: the HTTP status the API answers with is the
/// code (4xx: the request, 5xx: the supervisor), with the error behind it.
public struct SupervisorError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    /// 422s about resources: where, in each stored resource.
    public var diagnostics: [APIDiagnostic] = []
    /// What failed underneath (the database's error), for logs.
    public var cause: (any Error)?
    public var description: String { message }

    public init(_ status: Int, _ message: String, cause: (any Error)? = nil) {
        self.status = status
        self.message = message
        self.cause = cause
    }

    static func notFound(_ what: String) -> SupervisorError { SupervisorError(404, what + " not found") }
    static func storage(_ error: any Error) -> SupervisorError { SupervisorError(500, "state database: \(error)", cause: error) }
}

public struct SupervisorOptions: Sendable {
    public var environment: [String: String]
    /// The vtarget binary: each instance runs as `vtarget run` for one instance (its shim).
    public var executable: String
    public var sandbox: Bool
    /// First restart delay; doubles per restart up to `backoffCap`.
    public var backoffBase: Double
    public var backoffCap: Double
    /// Keep one shim started ahead of need (`Supervisor+Standby`); off with
    /// VTARGET_STANDBY_SHIM=0.
    public var standbyShim: Bool

    public init(environment: [String: String], executable: String, sandbox: Bool = true,
                backoffBase: Double = 1, backoffCap: Double = 60, standbyShim: Bool = true) {
        self.environment = environment
        self.executable = executable
        self.sandbox = sandbox
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.standbyShim = standbyShim
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
    var subscribers: [Int: AsyncStream<EventInfo>.Continuation] = [:]
    /// Pools by "namespace/name", as last applied; claim timers by instance key.
    var poolTemplates: [String: PoolTemplate] = [:]
    var claimTimers: [String: Task<Void, Never>] = [:]
    /// The refill after a claim, which the claim does not wait for.
    var topUps: [String: Task<Void, Never>] = [:]
    /// Bumped by every instance change; claims waiting on an empty pool wake on it.
    var changes = 0
    var changeWaiters: [CheckedContinuation<Void, Never>] = []
    var nextSubscriber = 0
    /// Per-namespace locks of the mutating operations.
    var locks = NamespaceLocks()
    /// Callers waiting for an instance's next status.json, by key, and how
    /// many changes each key has seen (so a change between a check and the
    /// wait is never missed).
    var statusWaiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    var statusChanges: [String: Int] = [:]
    /// Members whose shim is restoring their snapshot.
    var releasing: Set<String> = []
    /// Instances whose next shim starts with the guest's CPUs stopped (`start --paused`).
    var pausedStarts: Set<String> = []
    public internal(set) var adopted = 0
    /// The shim started ahead of need, and the timer that starts the next.
    var standby: Standby?
    var standbyTimer: Task<Void, Never>?

    struct Shim {
        var uid: String
        var identity: ProcessIdentity
        var child: ChildProcess?
    }

    public init(paths: SupervisorPaths, options: SupervisorOptions, catalog: MachineCatalog) throws {
        self.paths = paths
        self.options = options
        self.catalog = catalog
        Self.raiseOpenFileLimit()
        try RuntimeDirectory.ensurePrivate(paths.stateDirectory)
        self.store = try StateStore(path: paths.database)
    }

    /// On a clean stop: the database file complete on its own (see `checkpoint`).
    public func closeState() async {
        await dropStandby()
        do { try store.checkpoint() } catch { log("cannot checkpoint the state database: \(error)") }
    }

    /// Feeds status.json changes to the instances; runs until cancelled.
    public func watchStatusChanges() async {
        for await key in statusWatcher.changes {
            if Task.isCancelled { return }
            statusChanged(key)
        }
    }

    // MARK: - Helpers

    func info(_ row: InstanceRow) -> InstanceInfo {
        var conditions = [Condition(type: "Ready", status: row.ready ? "True" : "False",
                                    reason: row.ready ? "ReadinessReached" : (row.isActive ? row.phase.rawValue : (row.reason ?? InstanceReason(row.phase.rawValue)).rawValue),
                                    message: row.ready ? nil : row.message, lastTransitionTime: row.ready ? row.readyAt : (row.finishedAt ?? row.startedAt))]
        // As KubeVirt's VMI: phase Running, and a Paused condition (the STATUS column shows it).
        if row.paused {
            conditions.append(Condition(type: "Paused", status: "True", reason: "PausedByUser",
                                        message: "the guest's CPUs are stopped; vtarget resume continues them", lastTransitionTime: row.pausedAt))
        }
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
        out.labels = row.labels.isEmpty ? nil : row.labels
        out.claimedAt = row.claimedAt
        out.claimExpiresAt = row.claimExpiresAt
        if let a = row.guestAgent, row.phase == .running {
            out.guestAgent = a
        }
        return out
    }

    /// The instance's row for the supervisor's own bookkeeping: nil when it is
    /// gone (deleted meanwhile), and a database failure is logged, not taken
    /// silently for "gone".
    func storedRow(_ namespace: String, _ name: String) -> InstanceRow? {
        do { return try store.instance(namespace, name) } catch {
            log("cannot read instance \(namespace)/\(name): \(error)")
            return nil
        }
    }

    /// The instance's row: not found is a 404, a database failure a 500, never
    /// one taken for the other.
    func instanceRow(_ namespace: String, _ name: String) throws(SupervisorError) -> InstanceRow {
        let row: InstanceRow?
        do { row = try store.instance(namespace, name) } catch { throw .storage(error) }
        guard let row else { throw .notFound("instance \"\(name)\" in namespace \(namespace)") }
        return row
    }

    func event(_ type: String, _ row: InstanceRow, _ reason: String, _ message: String, at time: Double? = nil) -> EventRow {
        EventRow(id: nil, time: time ?? ShimStatus.now, namespace: row.namespace, kind: "VirtualTargetInstance",
                 name: row.name, type: type, reason: reason, message: message)
    }

    func commit(_ row: InstanceRow, _ event: EventRow) { commit(row, [event]) }

    /// The row (with its spec when it changed) and its events in one
    /// transaction, then the events to watchers. Only `create` inserts: any
    /// other commit of a row that was deleted meanwhile fails rather than
    /// bringing the deleted instance back.
    func commit(_ row: InstanceRow, _ events: [EventRow] = [], spec: String? = nil, inserting: Bool = false) {
        var stored = events
        do {
            try store.write { db in
                if inserting { try row.insert(db) } else { try row.update(db) }
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

    /// Counts a status change of `key` (or its shim's end) and wakes its waiters.
    func statusArrived(_ key: String) {
        statusChanges[key, default: 0] += 1
        for w in statusWaiters.removeValue(forKey: key) ?? [] { w.resume() }
    }

    /// Returns at the first status change of `key` after the `seen`-th.
    func nextStatus(_ key: String, after seen: Int) async {
        guard statusChanges[key, default: 0] == seen else { return }
        await withCheckedContinuation { statusWaiters[key, default: []].append($0) }
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
        labels = d.labels
        owner = d.owner
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
