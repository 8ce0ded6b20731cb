import TargetSpec

/// What the session keeps of an instance once it is planned, board or VM:
/// its names and lifecycle. Everything else it needs is in the plan.
public struct SessionInstance: Sendable {
    public var name: String
    public var namespace: String
    public var lifecycle: Lifecycle

    public init(name: String, namespace: String, lifecycle: Lifecycle) {
        self.name = name
        self.namespace = namespace
        self.lifecycle = lifecycle
    }

    public init(_ board: RunnableTarget) {
        self.init(name: board.name, namespace: board.namespace, lifecycle: board.lifecycle)
    }

    public init(_ vm: RunnableVM) {
        self.init(name: vm.name, namespace: vm.namespace, lifecycle: vm.lifecycle)
    }
}
