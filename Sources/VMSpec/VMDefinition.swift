import ResourceKit
import YAMLTree

/// One VM as vtarget runs it, whichever API wrote it: a KubeVirt
/// VirtualMachine or VirtualMachineInstance (instancetype and preference
/// already applied) or a Viti Machine (class already applied). The decoders
/// produce it; the QEMU planner and the runtime read nothing else, so a field
/// KubeVirt and Viti spell differently is reconciled once, here.
///
/// It names images and volumes, never host paths: the image store and the
/// volume directory resolve those at start (`VMDisk.Source`).
public struct VMDefinition: Sendable {
    public enum API: String, Sendable, CaseIterable {
        case kubevirtVirtualMachine = "VirtualMachine"
        case kubevirtVirtualMachineInstance = "VirtualMachineInstance"
        case vitiMachine = "Machine"
    }

    public var metadata: ObjectMeta
    public var api: API
    public var runStrategy: RunStrategy
    public var architecture: Architecture
    /// QEMU's machine type as KubeVirt writes it (`q35`, `pc`, `virt`, or a
    /// versioned `pc-q35-7.2`); checked against the architecture by the decoder.
    public var machineType: String
    public var cpu: CPUTopology
    public var memoryBytes: UInt64
    /// Where the memory was given (the VM's field, or the instancetype or
    /// class that set it), for checks made later against the host.
    public var memoryLocation: SourceLocation? = nil
    public var memoryField: String = "domain.memory.guest"
    public var firmware: Firmware
    public var kernelBoot: KernelBoot?
    /// In the order written; boot order is `VMDisk.bootOrder`, else this order.
    public var disks: [VMDisk]
    public var interfaces: [VMInterface]
    /// A virtio-rng device (`devices.rng: {}`).
    public var rng: Bool
    /// `autoattachSerialConsole` (default true): the first serial port is the console.
    public var serialConsole: Bool
    /// `autoattachGraphicsDevice` (default true): a VGA device and a VNC socket.
    public var graphics: Bool
    /// The guest's hostname (KubeVirt: `spec.hostname`, else the name).
    public var hostname: String
    /// `terminationGracePeriodSeconds`: how long a stop waits for the guest's
    /// ACPI shutdown before it kills QEMU; nil is KubeVirt's default (30 s).
    public var terminationGracePeriodSeconds: Int? = nil
    /// Lifecycle fields vtarget adds to every kind (`ttl`, `readiness`, ...) are
    /// not here: a VM's TTL and readiness come with the VM driver.

    public init(metadata: ObjectMeta, api: API, runStrategy: RunStrategy, architecture: Architecture, machineType: String,
                cpu: CPUTopology, memoryBytes: UInt64, firmware: Firmware, kernelBoot: KernelBoot? = nil, disks: [VMDisk],
                interfaces: [VMInterface], rng: Bool = false, serialConsole: Bool = true, graphics: Bool = true, hostname: String) {
        self.metadata = metadata
        self.api = api
        self.runStrategy = runStrategy
        self.architecture = architecture
        self.machineType = machineType
        self.cpu = cpu
        self.memoryBytes = memoryBytes
        self.firmware = firmware
        self.kernelBoot = kernelBoot
        self.disks = disks
        self.interfaces = interfaces
        self.rng = rng
        self.serialConsole = serialConsole
        self.graphics = graphics
        self.hostname = hostname
    }
}

/// KubeVirt's `spec.runStrategy` (and the deprecated `running: true|false`,
/// which maps to Always|Halted). A VirtualMachineInstance runs Once.
public enum RunStrategy: String, Sendable, CaseIterable {
    case Always, RerunOnFailure, Manual, Halted, Once
}

public enum Architecture: String, Sendable, CaseIterable {
    case amd64, arm64

    /// The QEMU binary's suffix: `qemu-system-x86_64`, `qemu-system-aarch64`.
    public var qemuSuffix: String { self == .amd64 ? "x86_64" : "aarch64" }
}

/// `domain.cpu`: sockets × cores × threads vCPUs.
public struct CPUTopology: Sendable, Equatable {
    public var sockets: Int
    public var cores: Int
    public var threads: Int
    /// `host-model`, `host-passthrough` or a QEMU model name; nil is QEMU's default.
    public var model: String?

    public init(sockets: Int = 1, cores: Int = 1, threads: Int = 1, model: String? = nil) {
        self.sockets = sockets
        self.cores = cores
        self.threads = threads
        self.model = model
    }

    public var vcpus: Int { sockets * cores * threads }
}

/// `domain.firmware.bootloader`.
public enum Firmware: Sendable, Equatable {
    /// SeaBIOS on x86; on arm64 `virt` there is no BIOS, so the decoder maps
    /// bios there to an error and leaves EFI the default.
    case bios
    /// OVMF (x86) or AAVMF (arm64) with a per-VM copy of the vars file.
    case efi(secureBoot: Bool)
}

/// `domain.firmware.kernelBoot`: a kernel and initrd taken from a container
/// disk image (`container.image` with `kernelPath`, `initrdPath`).
public struct KernelBoot: Sendable, Equatable {
    public var image: String
    public var kernelPath: String?
    public var initrdPath: String?
    public var kernelArgs: String?

    public init(image: String, kernelPath: String?, initrdPath: String?, kernelArgs: String?) {
        self.image = image
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.kernelArgs = kernelArgs
    }
}

/// What a DataVolume holds when it is first made (CDI's `spec.source`).
/// As CDI imports once, a volume that exists already keeps what it holds.
public enum VolumeContent: Sendable, Equatable {
    /// `blank: {}`: an empty disk of the requested size.
    case blank
    /// `registry.url: docker://REF`: a store image, copied in whole (then
    /// grown to the requested size), so the volume never depends on the store.
    case image(reference: String)
    /// `pvc: {namespace, name}`: a copy of another named volume (CDI's clone).
    case clone(namespace: String?, name: String)
    /// `http.url`: a qcow2 or raw disk fetched once, when the volume is made.
    case http(url: String)
}

/// One entry of `devices.disks` joined with its volume (or one Viti disk).
public struct VMDisk: Sendable {
    public enum Kind: String, Sendable, CaseIterable { case disk, cdrom, lun }
    public enum Bus: String, Sendable, CaseIterable { case virtio, sata, scsi, usb }

    /// What backs the disk. Names, not host paths: resolved at start.
    public enum Source: Sendable, Equatable {
        /// A store image (`containerDisk.image`, a Viti `os` image); the VM
        /// writes a qcow2 overlay, never the image. `path` is the file inside
        /// a containerDisk (`/disk/...`) when the image holds several.
        case image(reference: String, path: String?)
        /// Fresh and empty at every start (`emptyDisk.capacity`).
        case empty(capacityBytes: UInt64)
        /// A named local volume that outlives the VM: a PVC or DataVolume
        /// (`claimName`/`name`), or a Viti disk (`<machine>-<disk>`).
        /// `capacityBytes` sizes it and `content` fills it when it is first
        /// made (a DataVolume template's); one that exists is used as it is.
        case volume(name: String, capacityBytes: UInt64?, storageClass: String?, content: VolumeContent? = nil)
        /// `hostDisk` (only with `--allow-host-paths`); `create` for DiskOrCreate.
        case hostDisk(path: String, create: Bool, capacityBytes: UInt64?)
        /// A generated cloud-init seed (NoCloud `cidata` or ConfigDrive `config-2`).
        case cloudInit(CloudInit)
        /// A ConfigMap's or Secret's keys as files on a small disk (KubeVirt
        /// gives the guest an ISO whose volume label is the disk's serial).
        case configMap(name: String)
        case secret(name: String)
    }

    public var name: String
    public var kind: Kind
    public var bus: Bus
    /// KubeVirt's `bootOrder` (1 boots first); unique per VM.
    public var bootOrder: Int?
    public var serial: String?
    public var readonly: Bool
    public var source: Source
    /// A configMap or secret disk's ISO volume label (KubeVirt's
    /// `volumeLabel`; nil is its default, `cfgdata`).
    public var volumeLabel: String?
    /// A configMap or secret that may be missing (KubeVirt's `optional`):
    /// the guest then gets the disk with no files on it.
    public var optional: Bool
    /// Where the disk was written, for errors found later (a missing image).
    public var location: SourceLocation?
    /// Whose a `.volume` disk's volume is, when the VM makes it itself; nil
    /// for a claim or DataVolume of its own, which any VM may name.
    public var owner: VolumeOwner?

    public init(name: String, kind: Kind = .disk, bus: Bus = .virtio, bootOrder: Int? = nil, serial: String? = nil,
                readonly: Bool = false, source: Source, volumeLabel: String? = nil, optional: Bool = false,
                location: SourceLocation? = nil, owner: VolumeOwner? = nil) {
        self.name = name
        self.owner = owner
        self.volumeLabel = volumeLabel
        self.optional = optional
        self.kind = kind
        self.bus = bus
        self.bootOrder = bootOrder
        self.serial = serial
        self.readonly = readonly
        self.source = source
        self.location = location
    }
}

/// The VM that makes a named volume (KubeVirt's VM owns the DataVolumes of
/// its templates; Viti's operator makes a Machine's disks), so a VM run as
/// an instance makes its own.
public enum VolumeOwner: Sendable, Equatable {
    /// A `dataVolumeTemplates` entry of the VM, named as written.
    case dataVolumeTemplate
    /// A Viti Machine's disk, `<machine>-<disk>`.
    case machine
    /// One of those made for the instance the VM runs as (`VMDefinition.running(as:)`):
    /// it goes with the instance.
    case instance
}

/// cloud-init data as the guest will read it; the seed's filesystem is made
/// at start by a real tool (genisoimage/xorriso), never here.
public struct CloudInit: Sendable, Equatable {
    public enum Flavor: String, Sendable, CaseIterable {
        /// Volume label `cidata`: meta-data, user-data, network-config.
        case noCloud
        /// Volume label `config-2`: openstack/latest/{meta_data.json,user_data,network_data.json}.
        case configDrive
    }

    public var flavor: Flavor
    /// nil when the user data comes from a Secret (`secretRef`), resolved at start.
    public var userData: String?
    public var userDataSecret: String?
    public var networkData: String?
    public var networkDataSecret: String?

    public init(flavor: Flavor, userData: String? = nil, userDataSecret: String? = nil,
                networkData: String? = nil, networkDataSecret: String? = nil) {
        self.flavor = flavor
        self.userData = userData
        self.userDataSecret = userDataSecret
        self.networkData = networkData
        self.networkDataSecret = networkDataSecret
    }
}

/// One entry of `devices.interfaces` joined with its network.
public struct VMInterface: Sendable, Equatable {
    public enum Binding: String, Sendable, CaseIterable {
        /// `pod` network: QEMU user-mode NAT with DHCP and DNS, `ports` forwarded from 127.0.0.1.
        case masquerade
        /// KubeVirt's bridge binding on the pod network behaves the same here.
        case bridge
    }

    public struct Port: Sendable, Equatable {
        public enum TransportProtocol: String, Sendable, CaseIterable { case TCP, UDP }
        public var name: String?
        public var port: Int
        public var transport: TransportProtocol

        public init(name: String? = nil, port: Int, transport: TransportProtocol = .TCP) {
            self.name = name
            self.port = port
            self.transport = transport
        }
    }

    public var name: String
    public var binding: Binding
    /// `virtio` (default), `e1000`, `e1000e`, `rtl8139`, `ne2k_pci`, `pcnet`.
    public var model: String
    public var macAddress: String?
    /// Empty means every port, as KubeVirt's masquerade does; vtarget then
    /// forwards nothing until `port-forward` asks.
    public var ports: [Port]
    /// nil is the pod network; otherwise a named local L2 network (section 7).
    public var network: String?

    public init(name: String, binding: Binding = .masquerade, model: String = "virtio", macAddress: String? = nil,
                ports: [Port] = [], network: String? = nil) {
        self.name = name
        self.binding = binding
        self.model = model
        self.macAddress = macAddress
        self.ports = ports
        self.network = network
    }
}
