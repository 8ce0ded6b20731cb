import QEMULaunch
import VMSpec

/// What the runtime resolved before planning: every host path and port the
/// argv names. The planner invents none of them, so a plan is a pure
/// function of the VM and these inputs (and golden-testable).
public struct VMHostInputs: Sendable {
    public enum Accel: String, Sendable, CaseIterable { case kvm, tcg }

    /// How a disk's file reaches QEMU's block layer.
    public enum DiskFormat: String, Sendable, CaseIterable {
        case raw, qcow2

        var driver: BlockdevNode.Driver { self == .raw ? .raw : .qcow2 }
    }

    /// The file QEMU opens for one disk: a qcow2 overlay (images, emptyDisk,
    /// volumes), an ISO (cloud-init, configMap, secret), raw or qcow2 (hostDisk).
    public struct DiskBacking: Sendable, Equatable {
        public var path: String
        public var format: DiskFormat
        /// The read-only image a qcow2 overlay sits on (a store image), given
        /// to QEMU as a node of its own so QEMU never opens the path recorded
        /// in the overlay: with the sandbox, that path is not even visible.
        public var base: BaseImage?
        /// Made for this start and never written back (cloud-init seeds,
        /// configMap/secret ISOs): read-only nodes, which `savevm` skips
        /// (it refuses a writable raw node), so a VM with a seed can be snapshotted.
        public var readOnly: Bool

        public init(path: String, format: DiskFormat, base: BaseImage? = nil, readOnly: Bool = false) {
            self.path = path
            self.format = format
            self.base = base
            self.readOnly = readOnly
        }
    }

    public struct BaseImage: Sendable, Equatable {
        public var path: String
        public var format: DiskFormat

        public init(path: String, format: DiskFormat) {
            self.path = path
            self.format = format
        }
    }

    /// OVMF/AAVMF code (opened read-only) and this VM's own copy of the vars.
    public struct EFIFiles: Sendable, Equatable {
        public var code: String
        public var vars: String
        /// raw as the template ships; qcow2 (`qemu-img convert`) lets
        /// `savevm` include the vars, which it refuses for any writable raw
        /// node (warm pools, memory snapshots).
        public var varsFormat: DiskFormat

        public init(code: String, vars: String, varsFormat: DiskFormat = .raw) {
            self.code = code
            self.vars = vars
            self.varsFormat = varsFormat
        }
    }

    /// `kernelBoot`'s files, extracted from their image.
    public struct KernelFiles: Sendable, Equatable {
        public var kernel: String
        public var initrd: String?

        public init(kernel: String, initrd: String?) {
            self.kernel = kernel
            self.initrd = initrd
        }
    }

    /// The host port that carries one guest port of one interface (from 127.0.0.1).
    public struct ForwardedPort: Sendable, Equatable, Hashable {
        public var interface: String
        public var transport: VMInterface.Port.TransportProtocol
        public var guestPort: Int
        public var hostPort: Int

        public init(interface: String, transport: VMInterface.Port.TransportProtocol = .TCP, guestPort: Int, hostPort: Int) {
            self.interface = interface
            self.transport = transport
            self.guestPort = guestPort
            self.hostPort = hostPort
        }
    }

    public var qemuBinary: String
    public var accel: Accel
    /// By disk name; every disk of the VM needs one.
    public var disks: [String: DiskBacking]
    public var kernel: KernelFiles?
    public var efi: EFIFiles?
    /// QEMU's own directory (`InstanceLayout.qemuDirectory`, or the private
    /// one as root): its cwd, and where the console FIFOs are made, as a board's UARTs.
    public var instanceDirectory: String
    /// The qemu-guest-agent's unix socket (QEMU listens).
    public var guestAgentSocket: String
    /// The VNC display's unix socket (QEMU listens), used when the VM has graphics.
    public var vncSocket: String
    public var forwardedPorts: [ForwardedPort]
    /// A pool member's scratch qcow2 (`QemuImg.createSnapshotScratch`): a
    /// node `vt.snapshot` with no device, as boards get, so `savevm` has a
    /// place for the guest's RAM even in a VM with no writable qcow2.
    public var snapshotImage: String?
    /// QEMU's own `-sandbox` deny-list, as boards get it.
    public var qemuSandbox: Bool
    /// Files outside `instanceDirectory` go to QEMU as open fds
    /// (`-add-fd`, `/dev/fdset/N`): a sandboxed QEMU sees none of the host's
    /// home or state directories, and may run as a uid that could not open them.
    public var passImagesAsFDs: Bool = false
    /// The host's physical memory (`HostFacts.memoryBytes`): a guest asking
    /// for more is refused before anything starts, not left to fail in
    /// QEMU's allocation or the OOM killer. nil: unknown, nothing refused.
    public var hostMemoryBytes: UInt64? = nil

    /// The sockets default to `qga.sock` and `vnc.sock` in `instanceDirectory`,
    /// beside the FIFOs, where QEMU may create files.
    public init(qemuBinary: String, accel: Accel, disks: [String: DiskBacking], kernel: KernelFiles? = nil, efi: EFIFiles? = nil,
                instanceDirectory: String, guestAgentSocket: String? = nil, vncSocket: String? = nil,
                forwardedPorts: [ForwardedPort] = [], qemuSandbox: Bool = true) {
        self.qemuBinary = qemuBinary
        self.accel = accel
        self.disks = disks
        self.kernel = kernel
        self.efi = efi
        self.instanceDirectory = instanceDirectory
        self.guestAgentSocket = guestAgentSocket ?? instanceDirectory + "/qga.sock"
        self.vncSocket = vncSocket ?? instanceDirectory + "/vnc.sock"
        self.forwardedPorts = forwardedPorts
        self.qemuSandbox = qemuSandbox
    }
}
