import InstanceContract
/// The JSON of the supervisor's control API (`/v1/...` on a unix socket).
/// Field names follow Kubernetes where it has one.

/// One resource as the CLI validated it: its canonical YAML (YAMLEmitter),
/// the directory its relative paths are relative to, and the flags it was read with.
public struct AppliedResource: Codable, Sendable, Equatable {
    public var kind: String
    public var namespace: String
    public var name: String
    public var yaml: String
    public var directory: String
    public var options: ReadOptions

    public init(kind: String, namespace: String, name: String, yaml: String, directory: String, options: ReadOptions) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.yaml = yaml
        self.directory = directory
        self.options = options
    }
}

public struct ReadOptions: Codable, Sendable, Equatable {
    public var lenient: Bool
    public var allowHostPaths: Bool
    public var allowExtraArgs: Bool

    public init(lenient: Bool = false, allowHostPaths: Bool = false, allowExtraArgs: Bool = false) {
        self.lenient = lenient
        self.allowHostPaths = allowHostPaths
        self.allowExtraArgs = allowExtraArgs
    }
}

public struct ApplyRequest: Codable, Sendable {
    public var resources: [AppliedResource]
    public init(resources: [AppliedResource]) { self.resources = resources }
}

/// What happened to one object: created, configured, unchanged, deleted,
/// started, stopped (kubectl's words).
public struct ObjectResult: Codable, Sendable, Equatable {
    public var kind: String
    public var namespace: String
    public var name: String
    public var action: String

    public init(kind: String, namespace: String, name: String, action: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.action = action
    }
}

public struct ResourceInfo: Codable, Sendable {
    public var kind: String
    public var namespace: String
    public var name: String
    public var yaml: String
    public var directory: String
    public var createdAt: Double
    public var updatedAt: Double
    /// Columns for `get`: the machine of a target, the keys of a ConfigMap.
    public var summary: [String: String]

    public init(kind: String, namespace: String, name: String, yaml: String, directory: String,
                createdAt: Double, updatedAt: Double, summary: [String: String]) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.yaml = yaml
        self.directory = directory
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.summary = summary
    }
}

public struct Condition: Codable, Sendable, Equatable {
    public var type: String
    public var status: String
    public var reason: String?
    public var message: String?
    public var lastTransitionTime: Double?

    public init(type: String, status: String, reason: String? = nil, message: String? = nil, lastTransitionTime: Double? = nil) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.lastTransitionTime = lastTransitionTime
    }
}

/// A `VirtualTargetInstance` as the supervisor knows it.
public struct InstanceInfo: Codable, Sendable {
    public var namespace: String
    public var name: String
    /// Changes with every start, so a restart is told apart.
    public var uid: String
    public var target: String
    public var machine: String
    public var restartPolicy: String
    /// Stopped by `vtarget stop`; started by `vtarget start` or a changed spec.
    public var desired: String
    public var phase: String
    public var reason: String?
    public var message: String?
    public var ready: Bool
    public var conditions: [Condition]
    public var pid: Int32?
    public var qemuPID: Int32?
    public var createdAt: Double
    public var startedAt: Double?
    public var expiresAt: Double?
    public var finishedAt: Double?
    public var exitCode: Int32?
    public var signal: Int32?
    public var stderrTail: [String]
    public var restarts: Int
    public var nextRestartAt: Double?
    public var directory: String
    /// `serial.uart0`, `qmp`, ... → `unix:///path` (the contract's endpoints).
    public var endpoints: [String: String]
    /// Pool members: the pool, and the claim.
    public var pool: String?
    public var claimedAt: Double?
    public var claimExpiresAt: Double?
    /// The instance resource's `metadata.labels`, for `get -l`; absent from
    /// supervisors that predate it, which then match only selectors that need no label.
    public var labels: [String: String]?
    /// A running VM's qemu-guest-agent: connected or not, the guest's name and addresses.
    public var guestAgent: GuestAgentInfo?
    /// A recorded instance's kept bundles (`record: true`), oldest first.
    public var bundles: [String]?

    public init(namespace: String, name: String, uid: String, target: String, machine: String, restartPolicy: String,
                desired: String, phase: String, reason: String?, message: String?, ready: Bool, conditions: [Condition],
                pid: Int32?, qemuPID: Int32?, createdAt: Double, startedAt: Double?, expiresAt: Double?, finishedAt: Double?,
                exitCode: Int32?, signal: Int32?, stderrTail: [String], restarts: Int, nextRestartAt: Double?,
                directory: String, endpoints: [String: String], labels: [String: String]? = nil) {
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.target = target
        self.machine = machine
        self.restartPolicy = restartPolicy
        self.desired = desired
        self.phase = phase
        self.reason = reason
        self.message = message
        self.ready = ready
        self.conditions = conditions
        self.pid = pid
        self.qemuPID = qemuPID
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.expiresAt = expiresAt
        self.finishedAt = finishedAt
        self.exitCode = exitCode
        self.signal = signal
        self.stderrTail = stderrTail
        self.restarts = restarts
        self.nextRestartAt = nextRestartAt
        self.directory = directory
        self.endpoints = endpoints
        self.labels = labels
    }
}

public struct EventInfo: Codable, Sendable, Equatable {
    public var id: Int64
    public var time: Double
    public var namespace: String
    public var kind: String
    public var name: String
    /// Normal or Warning.
    public var type: String
    public var reason: String
    public var message: String

    public init(id: Int64, time: Double, namespace: String, kind: String, name: String, type: String, reason: String, message: String) {
        self.id = id
        self.time = time
        self.namespace = namespace
        self.kind = kind
        self.name = name
        self.type = type
        self.reason = reason
        self.message = message
    }
}

public struct InstanceDescription: Codable, Sendable {
    public var instance: InstanceInfo
    public var events: [EventInfo]

    public init(instance: InstanceInfo, events: [EventInfo]) {
        self.instance = instance
        self.events = events
    }
}

public struct DaemonStatus: Codable, Sendable {
    public var pid: Int32
    public var version: String
    public var startedAt: Double
    public var socket: String
    public var stateDirectory: String
    public var instances: Int
    public var running: Int
    public var adopted: Int

    public init(pid: Int32, version: String, startedAt: Double, socket: String, stateDirectory: String,
                instances: Int, running: Int, adopted: Int) {
        self.pid = pid
        self.version = version
        self.startedAt = startedAt
        self.socket = socket
        self.stateDirectory = stateDirectory
        self.instances = instances
        self.running = running
        self.adopted = adopted
    }
}

/// Every non-2xx answer: `{"code": 404, "message": "..."}`.
public struct APIErrorBody: Codable, Sendable {
    public var code: Int
    public var message: String
    /// For 422: each problem, at its place in the stored resource, so the
    /// CLI can point at the user's own file and line.
    public var diagnostics: [APIDiagnostic]?

    public init(code: Int, message: String, diagnostics: [APIDiagnostic]? = nil) {
        self.code = code
        self.message = message
        self.diagnostics = diagnostics
    }
}

/// One problem with an applied resource. `line` and `column` are positions
/// in the resource's stored (canonical) YAML, which the CLI emitted too.
public struct APIDiagnostic: Codable, Sendable, Equatable {
    public var kind: String
    public var namespace: String
    public var name: String
    public var line: Int?
    public var column: Int?
    public var field: String?
    public var message: String

    public init(kind: String, namespace: String, name: String, line: Int?, column: Int?, field: String?, message: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.line = line
        self.column = column
        self.field = field
        self.message = message
    }
}

/// A `VirtualTargetPool` and its members.
public struct PoolInfo: Codable, Sendable {
    public var namespace: String
    public var name: String
    public var target: String
    public var minReady: Int
    public var maxInstances: Int
    /// snapshot or restart (restart where the board cannot restore snapshots).
    public var recycle: String
    public var members: Int
    /// Ready and unclaimed: what a claim gets at once.
    public var ready: Int
    public var claimed: Int
    /// The pool resource's `metadata.labels`, for `get -l` (absent from older supervisors).
    public var labels: [String: String]?

    public init(namespace: String, name: String, target: String, minReady: Int, maxInstances: Int, recycle: String,
                members: Int, ready: Int, claimed: Int, labels: [String: String]? = nil) {
        self.namespace = namespace
        self.name = name
        self.target = target
        self.minReady = minReady
        self.maxInstances = maxInstances
        self.recycle = recycle
        self.members = members
        self.ready = ready
        self.claimed = claimed
        self.labels = labels
    }
}

/// What a VM's qemu-guest-agent said last (KubeVirt's AgentConnected
/// condition, `status.interfaces`, `guestOSInfo`): the shim's own record,
/// passed on as it is.
public typealias GuestAgentInfo = GuestAgentStatus
public typealias GuestInterfaceInfo = GuestInterface
