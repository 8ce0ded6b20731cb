#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a running instance publishes in `InstanceLayout.recordFile`, so that
/// `vtarget logs|wait|console|qmp|stop NAME` find it from another process.
public struct InstanceRecord: Codable, Sendable, Equatable {
    public var name: String
    public var namespace: String
    /// The `vtarget run` that owns it.
    public var ownerPID: Int32
    public var qemuPID: Int32
    /// QEMU's start time in clock ticks since boot (/proc/PID/stat field 22):
    /// with the pid, it names this process and no later one.
    public var qemuStartTime: UInt64
    public var phase: InstancePhase
    public var ready: Bool
    public var serialDevices: [String]
    public var directory: String
    /// Loopback TCP ports speaking RFC 2217, by device.
    public var rfc2217: [String: Int]
    /// The board honours system_powerdown.
    public var powerdown: Bool
    /// Owned by the supervisor: stop and start go through it.
    public var supervised: Bool?
    /// QEMU's GDB stub (a `type: gdb` device): where `vtarget gdb` attaches.
    /// Not in the layout: QEMU's directory moves when QEMU runs as its own uid.
    public var gdbSocket: String?
    /// QEMU's own directory (a VM's guest-agent and VNC sockets, where QEMU
    /// may write a screendump). Not in the layout: it moves when QEMU runs as
    /// its own uid.
    public var qemuDirectory: String?
    /// The guest's CPUs are stopped (QMP `stop`, `vtarget pause`): QEMU's
    /// run state is `paused`, learnt from its STOP and RESUME events.
    public var paused: Bool?
    /// Set in the copy kept after the run ended (`InstanceStateLayout.lastRun`).
    public var finishedAt: Double?

    public init(name: String, namespace: String, ownerPID: Int32, qemuPID: Int32, qemuStartTime: UInt64, phase: InstancePhase,
                ready: Bool, serialDevices: [String], directory: String, rfc2217: [String: Int], powerdown: Bool, supervised: Bool?,
                gdbSocket: String? = nil) {
        self.name = name
        self.namespace = namespace
        self.ownerPID = ownerPID
        self.qemuPID = qemuPID
        self.qemuStartTime = qemuStartTime
        self.phase = phase
        self.ready = ready
        self.serialDevices = serialDevices
        self.directory = directory
        self.rfc2217 = rfc2217
        self.powerdown = powerdown
        self.supervised = supervised
        self.gdbSocket = gdbSocket
    }

    /// Every path of this instance.
    public var layout: InstanceLayout { InstanceLayout(directory: directory) }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    public static func decode(_ data: Data) -> InstanceRecord? {
        try? JSONDecoder().decode(InstanceRecord.self, from: data)
    }
}
