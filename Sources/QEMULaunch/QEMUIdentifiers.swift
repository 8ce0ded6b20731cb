/// Block node names and device, netdev and chardev ids for planners outside
/// this module (VMs): the same rules and the same stable, collision-free
/// names the board planner uses, so snapshots, exports and clones address a
/// VM's nodes exactly as they address a board's.
public struct QEMUIdentifiers: Sendable {
    private var names = BlockNodeNames()

    public init() {}

    /// `prefix-name` with anything QEMU refuses in an id replaced, cut to 31
    /// characters with a hash when too long or already handed out.
    public mutating func claim(_ prefix: String, _ name: String) -> String {
        names.claim(prefix, name)
    }

    /// `-m`'s argument in the largest exact unit, as boards write it.
    public static func memoryArgument(_ bytes: UInt64) -> String {
        LaunchPlanner.memoryArgument(bytes)
    }
}
