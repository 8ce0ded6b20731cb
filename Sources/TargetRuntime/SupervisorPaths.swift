import HostOS
import InstanceContract

/// Where the per-user supervisor lives: its socket beside the instances'
/// sockets (short, 0700), its database and log in the XDG state directory.
public struct SupervisorPaths: Sendable {
    public var runtimeDirectory: String
    public var stateDirectory: String

    public init(environment: [String: String]) {
        runtimeDirectory = RuntimeDirectory.base(environment: environment)
        if let x = environment["VTARGET_STATE_DIR"], !x.isEmpty {
            stateDirectory = x
        } else if let x = environment["XDG_STATE_HOME"], !x.isEmpty {
            stateDirectory = x + "/vtarget"
        } else {
            stateDirectory = (environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp") + "/.local/state/vtarget"
        }
    }

    public var socket: String { runtimeDirectory + "/supervisor.sock" }
    public var database: String { stateDirectory + "/state.sqlite" }
    public var lock: String { stateDirectory + "/supervisor.lock" }
    public var log: String { stateDirectory + "/supervisor.log" }
    /// `<state>/instances/<namespace>/<name>`: the spec a shim runs, its status and output.
    public func instanceState(namespace: String, name: String) -> InstanceStateLayout {
        InstanceStateLayout(stateDirectory: stateDirectory, namespace: namespace, name: name)
    }
    /// `<state>/bundles`: recorded runs, apart from the instances' state,
    /// which `delete` removes; a bundle stays until its user removes it.
    public var bundlesDirectory: String { stateDirectory + "/bundles" }
    /// `<state>/bundles/<namespace>/<name>`: one recorded instance's bundles.
    public func bundles(namespace: String, name: String) -> String { bundlesDirectory + "/" + namespace + "/" + name }
    /// `<runtime>/ns-<namespace>/<name>`: the instance's sockets and logs.
    public func instance(namespace: String, name: String) -> InstanceLayout {
        .supervised(runtime: runtimeDirectory, namespace: namespace, name: name)
    }
}
