/// Every path of one instance's runtime directory, named in one place: the
/// shim creates them, the supervisor reports them as endpoints, the CLI
/// connects to them. A new socket or file is a new member here.
///
/// `directory` holds vtarget's own sockets and logs (0700, or 0711 when QEMU
/// runs as another uid); `qemuDirectory` is QEMU's own (its cwd, firmware
/// copies, FIFOs, GDB socket), handed to QEMU's uid, so a compromised QEMU
/// can never replace a socket a client connects to.
public struct InstanceLayout: Sendable, Equatable {
    public var directory: String

    public init(directory: String) { self.directory = directory }

    /// `<runtime>/ns-<namespace>/<name>`: a supervised instance, the same
    /// sockets every time it starts.
    public static func supervised(runtime: String, namespace: String, name: String) -> InstanceLayout {
        InstanceLayout(directory: namespaceDirectory(runtime: runtime, namespace: namespace) + "/" + name)
    }

    /// `<runtime>/ns-<namespace>`: the supervised instances of a namespace.
    public static func namespaceDirectory(runtime: String, namespace: String) -> String {
        runtime + "/" + namespacePrefix + namespace
    }

    /// `<runtime>/run-<pid>/<name>` (`<namespace>.<name>` outside the default
    /// namespace): one target of a foreground `vtarget run`.
    public static func run(_ runDirectory: String, namespace: String, name: String) -> InstanceLayout {
        InstanceLayout(directory: runDirectory + "/" + (namespace == "default" ? name : "\(namespace).\(name)"))
    }

    /// `<runtime>/run-<pid>`.
    public static func runDirectory(runtime: String, pid: Int32) -> String { runtime + "/" + runPrefix + "\(pid)" }

    public static let namespacePrefix = "ns-"
    public static let runPrefix = "run-"

    public var qemuDirectory: String { directory + "/qemu" }
    public var qmpSocket: String { directory + "/qmp.sock" }
    public var recordFile: String { directory + "/instance.json" }
    public var logDirectory: String { directory + "/logs" }
    public func serialSocket(_ device: String) -> String { directory + "/\(device).sock" }
    /// The takeover socket: a client here becomes the writer.
    public func forceSocket(_ device: String) -> String { directory + "/\(device).force.sock" }
    public func sidecarLog(_ sidecar: String) -> String { logDirectory + "/sidecar-\(sidecar).log" }
    /// Held (flock) by the `vtarget gdb` attached to this instance, with its pid inside.
    public var gdbLock: String { directory + "/gdb.lock" }

    /// Every socket a client may connect to, for the 107-byte check before anything starts.
    public func sockets(devices: [String]) -> [String] {
        [qmpSocket] + devices.flatMap { [serialSocket($0), forceSocket($0)] }
    }
}

/// The supervisor's per-instance state: `<state>/instances/<namespace>/<name>`.
/// It outlives the shim (the runtime directory does not), so a supervisor
/// started after a crash still finds what each shim reported.
public struct InstanceStateLayout: Sendable, Equatable {
    public var directory: String

    public init(stateDirectory: String, namespace: String, name: String) {
        directory = stateDirectory + "/instances/\(namespace)/\(name)"
    }

    public init(directory: String) { self.directory = directory }

    /// `<state>/runs/<namespace>/<name>`: what a foreground `vtarget run`
    /// keeps of its instance once it ended (its last run's logs), so that
    /// `vtarget logs NAME` works after the end, as kubectl shows a completed
    /// pod's. The most recent run of that name wins.
    public static func unsupervised(stateDirectory: String, namespace: String, name: String) -> InstanceStateLayout {
        InstanceStateLayout(directory: stateDirectory + "/runs/\(namespace)/\(name)")
    }

    /// The last run that ended: its `logs/` (the current file of each serial
    /// device and sidecar, at most `keptLogBytes` each) and its
    /// `instance.json` with `finishedAt` set. It is removed with the instance.
    public var lastRun: InstanceLayout { InstanceLayout(directory: directory + "/last-run") }
    /// The run before it (`vtarget logs --previous`).
    public var previousRun: InstanceLayout { InstanceLayout(directory: directory + "/previous-run") }
    /// The most kept of each log file: its end.
    public static let keptLogBytes = 4 << 20

    /// The composed YAML the shim runs.
    public var specFile: String { directory + "/spec.yaml" }
    /// `ShimStatus`, replaced atomically by the shim.
    public var statusFile: String { directory + "/status.json" }
    public static let statusFileName = "status.json"
    /// The shim's stdout and stderr.
    public var shimLog: String { directory + "/shim.log" }
}
