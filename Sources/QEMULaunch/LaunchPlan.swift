import MachineCatalog
import TargetSpec

/// Facts about the host the plan depends on, gathered by the caller.
public struct HostFacts: Sendable {
    public var architecture: Architecture
    /// True only when KVM was proven to work here (a cached probe), not
    /// merely when /dev/kvm exists.
    public var kvmUsable: Bool

    public init(architecture: Architecture = .x86_64, kvmUsable: Bool = false) {
        self.architecture = architecture
        self.kvmUsable = kvmUsable
    }
}

/// A drive whose image is on disk with a known format.
public struct ResolvedDrive: Sendable {
    public var drive: Drive
    public var path: String
    public var format: ImageFormat

    public init(drive: Drive, path: String, format: ImageFormat) {
        self.drive = drive
        self.path = path
        self.format = format
    }
}

/// One stream socket shared with QEMU: vtarget keeps one end, QEMU gets the
/// other as fd `childFD`. No path on disk, so no race and no other client.
public struct PlannedChannel: Sendable, Equatable {
    public enum Role: Sendable, Equatable {
        case qmp
        case serial(uart: Int)
        case can(bus: String, uart: Int)
    }
    public var device: String
    public var role: Role
    public var childFD: Int32
    public var chardevID: String
    /// Serve this UART over loopback TCP with RFC 2217 too (0: any free port).
    public var rfc2217Port: Int? = nil
    /// A CAN member's faults, from its device's `faults:`.
    public var canFaults: CANFaultSpec? = nil
}

/// An image vtarget opens and hands over as fd `childFD`, for a QEMU that
/// runs as another uid and could not open the user's file itself.
public struct PassedFile: Sendable, Equatable {
    public var path: String
    public var childFD: Int32
    public var writable: Bool
}

/// Everything needed to start one target: pure data, golden-tested.
public struct LaunchPlan: Sendable {
    public var targetName: String
    public var namespace: String
    public var binary: String
    public var arguments: [String]
    public var channels: [PlannedChannel]
    public var passedFiles: [PassedFile] = []
    public var gdbSocketPath: String?
    public var accel: String
    public var profile: String
    /// Guest RAM and vCPUs, for the cgroup limits.
    public var guestMemoryBytes: UInt64 = 0
    /// The scratch qcow2 `savevm` writes to (`-drive id=vt-snapshot`), when planned.
    public var snapshotImage: String?
    public var cpus: Int = 1
    public var warnings: [String]

    public var argv: [String] { [binary] + arguments }

    public var qmpChannel: PlannedChannel { channels.first { $0.role == .qmp }! }

    public var serialChannels: [PlannedChannel] {
        channels.filter { if case .serial = $0.role { return true } else { return false } }
    }

    /// How many fds (0..n-1) the child gets: stdio, the channels, the files.
    public var childFDCount: Int32 { 3 + Int32(channels.count + passedFiles.count) }
}

public struct LaunchOptions: Sendable {
    /// QEMU's own `-sandbox` deny-list, on by default.
    public var qemuSandbox: Bool
    /// Disk and cdrom images as fds (`-add-fd`, `/dev/fdset/N`) rather than paths.
    public var passImagesAsFDs: Bool
    /// A scratch qcow2 that only holds `savevm` state (warm pools): boards
    /// without a disk have nowhere else to keep a snapshot.
    public var snapshotImage: String?

    public init(qemuSandbox: Bool = true, passImagesAsFDs: Bool = false, snapshotImage: String? = nil) {
        self.qemuSandbox = qemuSandbox
        self.passImagesAsFDs = passImagesAsFDs
        self.snapshotImage = snapshotImage
    }
}
