import MachineCatalog
import TargetSpec

/// Facts about the host the plan depends on, gathered by the caller.
public struct HostFacts: Sendable {
    public var architecture: Architecture
    /// True only when KVM was proven to work here (a cached probe), not
    /// merely when /dev/kvm exists.
    public var kvmUsable: Bool
    /// The host's physical memory (`MemTotal`); nil when unknown, and then
    /// no guest is refused for its size.
    public var memoryBytes: UInt64?

    public init(architecture: Architecture = .x86_64, kvmUsable: Bool = false, memoryBytes: UInt64? = nil) {
        self.architecture = architecture
        self.kvmUsable = kvmUsable
        self.memoryBytes = memoryBytes
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

/// One byte stream between vtarget and a QEMU chardev.
public struct PlannedChannel: Sendable, Equatable {
    public enum Role: Sendable, Equatable {
        case qmp
        case serial(uart: Int)
        case can(bus: String, uart: Int)
    }
    /// How the stream reaches QEMU.
    public enum Transport: Sendable, Equatable {
        /// A socket pair: vtarget keeps one end, QEMU gets the other as fd
        /// `childFD`. No path on disk, so no race and no other client. QMP.
        case socketPair(childFD: Int32)
        /// Two FIFOs, `<path>.in` (to the guest) and `<path>.out` (from it),
        /// in QEMU's own directory, made and opened by vtarget before QEMU
        /// starts (`-chardev pipe`). UARTs: their models write one byte per
        /// call, which a pipe appends to one page where a socket allocates a
        /// buffer per byte and wakes the reader for each; QEMU streams about
        /// twice as fast and vtarget reads in far fewer, larger pieces.
        case fifoPair(path: String)
    }
    public var device: String
    public var role: Role
    public var transport: Transport
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

/// A drive QEMU opens through its block layer, by the names snapshots,
/// exports and clones address it with.
public struct BlockDrive: Sendable, Equatable {
    /// The spec's drive name, or `vt.snapshot` for the scratch image (a dot
    /// cannot occur in a drive name, which is a DNS label).
    public var name: String
    public var fileNode: String
    public var formatNode: String
    /// The `-device` id, when the drive has a frontend of its own.
    public var deviceID: String?
    public var readOnly: Bool
}

/// Everything needed to start one target: pure data, golden-tested.
public struct LaunchPlan: Sendable {
    public var targetName: String
    public var namespace: String
    public var binary: String
    public var arguments: [String]
    public var channels: [PlannedChannel]
    public var passedFiles: [PassedFile] = []
    /// QEMU has a user-mode network (a VM's pod network): it needs the host's
    /// network namespace and inet sockets, which boards never get.
    public var hostNetwork = false
    /// Guest ports reachable on the host's 127.0.0.1, by `PORT/tcp|udp`:
    /// what `run -- CMD` and sidecars get as `VTARGET_PORT_<PORT>_<TCP|UDP>`.
    public var forwardedPorts: [String: Int] = [:]
    public var gdbSocketPath: String?
    public var accel: String
    public var profile: String
    /// Guest RAM and vCPUs, for the cgroup limits.
    public var guestMemoryBytes: UInt64 = 0
    /// The scratch qcow2 `savevm` writes to (block drive `vt.snapshot`), when planned.
    public var snapshotImage: String?
    /// Every image QEMU opens through its block layer, in argv order.
    public var blockDrives: [BlockDrive] = []
    public var cpus: Int = 1
    /// Set when QEMU records or replays this run.
    public var recordReplay: RecordReplay?
    /// QEMU's own directory (its cwd; its FIFOs, firmware copies and GDB
    /// socket are in it): the `instanceDirectory` it was planned for.
    public var workingDirectory: String = ""
    public var warnings: [String]

    public var argv: [String] { [binary] + arguments }

    /// How QEMU, whose working directory is `directory`, names `path`:
    /// relative when it lies below, so it stays reachable when the way to
    /// `directory` is hidden from QEMU; as given otherwise. The `./` keeps
    /// QEMU from reading a name with a colon as `protocol:rest`.
    public static func relative(_ path: String, to directory: String) -> String {
        guard !directory.isEmpty, path.hasPrefix(directory + "/"), path.count > directory.count + 1 else { return path }
        // String's own append of a Substring: `String + Substring` is the
        // generic `+`, whose casts made the runtime scan every conformance
        // in the binary (~0.3 ms) on the way to the first QEMU start.
        var out = "./"
        out.append(contentsOf: path.dropFirst(directory.count + 1))
        return out
    }

    public var qmpChannel: PlannedChannel { channels.first { $0.role == .qmp }! }

    public var serialChannels: [PlannedChannel] {
        channels.filter { if case .serial = $0.role { return true } else { return false } }
    }

    /// How many fds (0..n-1) the child gets: stdio, the socket pairs, the files.
    public var childFDCount: Int32 { 3 + Int32(socketPairs.count + passedFiles.count) }

    /// The channels QEMU gets as fds, in fd order.
    public var socketPairs: [(channel: PlannedChannel, childFD: Int32)] {
        channels.compactMap { c in
            if case .socketPair(let fd) = c.transport { return (c, fd) } else { return nil }
        }.sorted { $0.childFD < $1.childFD }
    }
}

public struct LaunchOptions: Sendable {
    /// QEMU's own `-sandbox` deny-list, on by default.
    public var qemuSandbox: Bool
    /// Disk, cdrom and scratch images as fds (`-add-fd`, `/dev/fdset/N` as
    /// the `file` node's filename) rather than paths.
    public var passImagesAsFDs: Bool
    /// A scratch qcow2 that only holds `savevm` state (warm pools): boards
    /// without a disk have nowhere else to keep a snapshot.
    public var snapshotImage: String?

    /// QEMU's record/replay (`-icount ...,rr=record|replay`), off by default.
    public var recordReplay: RecordReplay?

    public init(qemuSandbox: Bool = true, passImagesAsFDs: Bool = false, snapshotImage: String? = nil, recordReplay: RecordReplay? = nil) {
        self.qemuSandbox = qemuSandbox
        self.passImagesAsFDs = passImagesAsFDs
        self.snapshotImage = snapshotImage
        self.recordReplay = recordReplay
    }
}

/// Recording a run, or replaying one, with QEMU's deterministic
/// record/replay: every input of the guest (serial bytes, clocks,
/// interrupts' timing) goes to `logFile` while recording and comes from it
/// while replaying, so a replay needs nothing fed and prints the same bytes.
public struct RecordReplay: Sendable, Equatable {
    public enum Mode: String, Sendable { case record, replay }
    public var mode: Mode
    /// QEMU's `rrfile`: a plain name is taken to be in the instance
    /// directory (the plan holds the whole path).
    public var logFile: String
    /// `-icount shift=`: instructions are counted, not timed, so the guest's
    /// clock follows its own execution; a replay must use the recording's.
    public var icountShift: String
    /// `rrsnapshot=`: a VM snapshot taken at the start of the recording
    /// (kept in the scratch image, `LaunchOptions.snapshotImage`), from which
    /// a replay can run backwards (gdb's reverse-stepi).
    public var snapshot: String?

    /// The name `vtarget run --record` gives the start snapshot.
    public static let startSnapshot = "init"

    public init(mode: Mode, logFile: String, icountShift: String = "auto", snapshot: String? = nil) {
        self.mode = mode
        self.logFile = logFile
        self.icountShift = icountShift
        self.snapshot = snapshot
    }
}
