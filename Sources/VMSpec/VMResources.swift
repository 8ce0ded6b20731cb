import ResourceKit
import YAMLTree

/// The VM kinds as decoded, before instancetype, preference and class are
/// applied: what the user wrote, with positions, so resolution (`VMResolver`)
/// can still point at the field that conflicts. Each VM-like kind carries its
/// `definition` once resolved.

/// `spec.instancetype` / `spec.preference` of a VirtualMachine.
public struct VMTypeReference: Sendable, Equatable {
    public var name: String
    /// The cluster-scoped kind (`VirtualMachineCluster...`), KubeVirt's default.
    public var cluster: Bool
    public var location: SourceLocation
    public var path: String
}

/// One `devices.disks` entry as written; the bus is defaulted at resolution
/// (a preference may choose it).
public struct VMDiskSpec: Sendable {
    public var name: String
    public var kind: VMDisk.Kind
    public var bus: VMDisk.Bus?
    public var bootOrder: Located<Int>?
    public var serial: String?
    public var readonly: Bool
    public var location: SourceLocation
    public var path: String
}

/// One `volumes` entry: its name and what backs it.
public struct VMVolumeSpec: Sendable {
    public var name: String
    public var source: VMDisk.Source
    /// `persistentVolumeClaim.readOnly`: the disk is read-only whatever it says.
    public var readonly: Bool
    /// A configMap or secret volume's `volumeLabel` and `optional`.
    public var volumeLabel: String? = nil
    public var optional = false
    /// `.dataVolumeTemplate` when a template of the VM makes it.
    public var owner: VolumeOwner? = nil
    public var location: SourceLocation
    public var path: String
}

public struct VMInterfaceSpec: Sendable {
    public var name: String
    public var binding: VMInterface.Binding
    public var model: String?
    public var macAddress: String?
    public var ports: [VMInterface.Port]
    public var location: SourceLocation
    public var path: String
}

public struct VMNetworkSpec: Sendable {
    public var name: String
    /// `multus.networkName`; nil is the pod network.
    public var multus: String?
    public var location: SourceLocation
    public var path: String
}

/// A VirtualMachineInstance spec (a VM's `spec.template.spec`) as written.
public struct VMInstanceSpec: Sendable {
    /// `spec` or `spec.template.spec`, for messages.
    public var path: String
    public var location: SourceLocation
    public var architecture: Located<Architecture>?
    public var machineType: Located<String>?
    /// `domain.cpu`; nil fields were not written.
    public var cores: Located<Int>?
    public var sockets: Located<Int>?
    public var threads: Located<Int>?
    public var cpuModel: Located<String>?
    /// `resources.requests.cpu` or `limits.cpu`: only checked against an instancetype.
    public var cpuResources: Located<String>?
    public var memoryGuest: Located<UInt64>?
    public var memoryRequest: Located<UInt64>?
    public var memoryLimit: Located<UInt64>?
    public var bootloader: Located<Firmware>?
    public var kernelBoot: KernelBoot?
    public var disks: [VMDiskSpec] = []
    public var volumes: [VMVolumeSpec] = []
    public var interfaces: [VMInterfaceSpec] = []
    public var networks: [VMNetworkSpec] = []
    public var rng: Bool?
    public var autoattachSerialConsole: Bool?
    public var autoattachGraphicsDevice: Bool?
    public var autoattachPodInterface: Bool?
    public var hostname: String?
    public var terminationGracePeriodSeconds: Int?

    public init(path: String, location: SourceLocation) {
        self.path = path
        self.location = location
    }
}

/// `kubevirt.io/v1` VirtualMachine.
public struct KubeVirtVirtualMachine: Sendable {
    public var metadata: ObjectMeta
    public var runStrategy: RunStrategy
    public var instancetype: VMTypeReference?
    public var preference: VMTypeReference?
    public var template: VMInstanceSpec
    /// Filled by `VMResolver`.
    public var definition: VMDefinition?
}

/// `kubevirt.io/v1` VirtualMachineInstance: runs once.
public struct KubeVirtVirtualMachineInstance: Sendable {
    public var metadata: ObjectMeta
    public var spec: VMInstanceSpec
    public var definition: VMDefinition?
}

/// `VirtualMachineInstancetype` or `VirtualMachineClusterInstancetype`.
public struct VMInstancetype: Sendable {
    public var metadata: ObjectMeta
    public var cluster: Bool
    public var guestCPUs: Int
    public var cpuModel: String?
    public var memoryBytes: UInt64

    public var kind: String { cluster ? "VirtualMachineClusterInstancetype" : "VirtualMachineInstancetype" }
}

/// KubeVirt's `preferredCPUTopology` (the deprecated `prefer*` spellings map here).
public enum PreferredCPUTopology: String, Sendable, CaseIterable {
    case cores, sockets, threads, spread, any
}

/// `VirtualMachinePreference` or `VirtualMachineClusterPreference`: defaults
/// for what the VM leaves unset.
public struct VMPreference: Sendable {
    public var metadata: ObjectMeta
    public var cluster: Bool
    public var cpuTopology: PreferredCPUTopology?
    /// `preferSpreadSocketToCoreRatio` or `spreadOptions.ratio` (default 2).
    public var spreadRatio: Int?
    public var diskBus: VMDisk.Bus?
    public var cdromBus: VMDisk.Bus?
    public var lunBus: VMDisk.Bus?
    public var interfaceModel: String?
    public var autoattachSerialConsole: Bool?
    public var autoattachGraphicsDevice: Bool?
    public var autoattachPodInterface: Bool?
    public var rng: Bool?
    public var firmware: Firmware?
    public var machineType: String?
    public var architecture: Architecture?
    public var terminationGracePeriodSeconds: Int?
    /// `requirements`: what an instancetype or VM must give at least.
    public var requiredCPUs: Int?
    public var requiredMemoryBytes: UInt64?
    public var location: SourceLocation

    public var kind: String { cluster ? "VirtualMachineClusterPreference" : "VirtualMachinePreference" }
}

/// One disk of a Viti Machine: a named local volume `<machine>-<disk>`.
public struct VitiDisk: Sendable {
    public var name: String
    public var sizeBytes: UInt64?
    public var storageClass: String?
    public var boot: Bool
    public var location: SourceLocation
    public var path: String
}

/// `vitistack.io/v1alpha1` Machine, in the seed's spelling (`instanceType`,
/// `disks[].size`) or upstream's (`machineClass`, `disks[].sizeGB`).
public struct VitiMachine: Sendable {
    public var metadata: ObjectMeta
    /// `instanceType` or `machineClass`; nil is "small", the seed's smallest.
    public var className: Located<String>?
    /// `spec.name`, the guest's hostname.
    public var vmName: String?
    public var cores: Int?
    public var sockets: Int?
    public var threads: Int?
    public var memoryBytes: Located<UInt64>?
    public var machineType: Located<String>?
    public var architecture: Architecture?
    public var disks: [VitiDisk] = []
    /// `os.imageID`, else `<distribution>:<version>`: a store image reference.
    public var image: String?
    public var sshKeys: [String] = []
    public var userData: Located<String>?
    public var cloudInit: Located<String>?
    public var definition: VMDefinition?
}

/// `vitistack.io/v1alpha1` MachineClass (cluster-scoped).
public struct VitiMachineClass: Sendable {
    public var metadata: ObjectMeta
    public var cores: Int
    public var sockets: Int
    public var threads: Int
    public var memoryBytes: UInt64
    /// `memory.minQuantity`/`maxQuantity`: the bounds a Machine's `memory` override must keep.
    public var minMemoryBytes: UInt64?
    public var maxMemoryBytes: UInt64?

    public init(metadata: ObjectMeta, cores: Int, sockets: Int, threads: Int, memoryBytes: UInt64,
                minMemoryBytes: UInt64? = nil, maxMemoryBytes: UInt64? = nil) {
        self.metadata = metadata
        self.cores = cores
        self.sockets = sockets
        self.threads = threads
        self.memoryBytes = memoryBytes
        self.minMemoryBytes = minMemoryBytes
        self.maxMemoryBytes = maxMemoryBytes
    }
}

/// An instancetype, preference or MachineClass as a VM names it: its kind
/// (`VirtualMachineClusterInstancetype`, ..., `MachineClass`) and name.
public struct VMTypeKey: Sendable, Hashable, CustomStringConvertible {
    public var kind: String
    public var name: String

    public init(kind: String, name: String) {
        self.kind = kind
        self.name = name
    }

    public var description: String { "\(kind) \"\(name)\"" }
}

extension KubeVirtVirtualMachine {
    /// The instancetype and preference it names.
    public var typeKeys: [VMTypeKey] {
        [instancetype.map { VMTypeKey(kind: $0.cluster ? "VirtualMachineClusterInstancetype" : "VirtualMachineInstancetype", name: $0.name) },
         preference.map { VMTypeKey(kind: $0.cluster ? "VirtualMachineClusterPreference" : "VirtualMachinePreference", name: $0.name) }]
            .compactMap { $0 }
    }
}

extension VitiMachine {
    /// The class of a Machine that names none: the seed's smallest.
    public static let defaultClass = "small"

    /// The MachineClass it names (none written: the seed's "small"), which a
    /// stored MachineClass of that name replaces.
    public var classKey: VMTypeKey { VMTypeKey(kind: "MachineClass", name: className?.value ?? VitiMachine.defaultClass) }
}
