@_exported import ResourceKit
import MachineCatalog
// Only the VM kinds: VMSpec's `Architecture` would shadow the board one here.
import struct VMSpec.KubeVirtVirtualMachine
import struct VMSpec.KubeVirtVirtualMachineInstance
import struct VMSpec.VMInstancetype
import struct VMSpec.VMPreference
import struct VMSpec.VitiMachine
import struct VMSpec.VitiMachineClass
import struct VMSpec.VolumeClaim
import struct VMSpec.VMDefinition
import YAMLTree

public enum RestartPolicy: String, Sendable, CaseIterable { case Never, OnFailure, Always }
/// `spec.record`: `false` or `Never` (`off`), `true` or `Always` (`always`:
/// every run leaves a bundle), `OnFailure` (only a run that failed or
/// expired keeps its bundle).
public enum Recording: Sendable, Equatable { case off, always, onFailure }
public enum Accel: String, Sendable, CaseIterable { case auto, kvm, tcg }

public struct Readiness: Sendable {
    public var device: String
    public var pattern: String
    public var timeoutSeconds: Double
    public var location: SourceLocation
}

public struct Sidecar: Sendable {
    public enum Role: String, Sendable, CaseIterable { case test, helper }
    public var name: String
    public var image: String?
    public var command: [String]
    public var env: [(name: String, value: String)]
    public var role: Role
}

/// A check written in the spec: text sent to a UART, patterns expected back.
public struct DeclarativeTest: Sendable {
    public enum Step: Sendable {
        case send(String, device: String?)
        case expect(pattern: String, timeoutSeconds: Double, device: String?)
    }
    public var name: String
    public var steps: [Step]
}

/// Lifecycle fields shared by QemuVirtualTarget and VirtualTargetInstance.
public struct Lifecycle: Sendable {
    public var ttlSeconds: Double?
    /// Expire after this long with no client on any endpoint.
    public var idleTTLSeconds: Double?
    public var readiness: Readiness?
    public var restartPolicy: RestartPolicy?
    public var sidecars: [Sidecar] = []
    public var tests: [DeclarativeTest] = []
    /// `record: true`: every run of the instance is recorded (QEMU's
    /// record/replay) into a bundle, as `vtarget run --record` does;
    /// `OnFailure` keeps only a failed run's, as `--bundle-on-failure`; an
    /// instance's `record: false` turns its target's off. Kept with its
    /// place: what cannot be recorded is refused there.
    public var record: Located<Recording>?

    /// Whether runs are recorded (`true` or `OnFailure`).
    public var records: Bool { (record?.value ?? .off) != .off }
}

public struct SMP: Sendable, Equatable {
    public var cpus: Int
    public var cores: Int?
    public var sockets: Int?
    public var threads: Int?
}

public struct Drive: Sendable {
    public enum Kind: String, Sendable, CaseIterable { case pflash, kernel, bios, disk, cdrom }
    public enum Format: String, Sendable, CaseIterable { case auto, elf, ihex, raw, qcow2 }
    public enum Source: Sendable {
        case configMap(name: String, key: String?)
        /// Absolute, already resolved against the YAML file's directory.
        case file(path: String)
        case hostPath(path: String)
        case emptyDisk(capacityBytes: UInt64)
    }
    public var name: String
    public var kind: Kind
    public var format: Format
    public var source: Source
    /// QEMU opens the image read-only (a cdrom always is): the guest cannot
    /// change a shared base image or firmware.
    public var readOnly: Bool = false
    public var location: SourceLocation
    public var path: String
}

public struct Device: Sendable {
    public enum Kind: Sendable, Equatable {
        case serial(index: Int?)
        case can(bus: String, uart: Int?)
        case gdb
    }
    public var name: String
    public var kind: Kind
    public var location: SourceLocation
    public var path: String
    /// Serial devices: a loopback TCP port speaking RFC 2217 (0 picks one).
    public var rfc2217Port: Int?
    /// CAN devices: faults applied to the frames this member sends.
    public var canFaults: CANFaultSpec?
}

/// Fault injection on a CAN member's frames, from YAML.
public struct CANFaultSpec: Sendable, Equatable {
    public var drop = 0.0
    public var delaySeconds = 0.0
    public var corrupt = 0.0
    public var busOff = false
    public init() {}
}

public struct QemuConfig: Sendable {
    public var machine: Located<String>
    /// The profile the machine name resolved to.
    public var profileName: String
    public var cpu: Located<String>?
    public var memoryBytes: Located<UInt64>?
    public var smp: Located<SMP>?
    public var accel: Accel
    public var drives: [Drive]
    public var devices: [Device]
    public var extraArgs: [Located<String>]
}

public struct QemuVirtualTarget: Sendable {
    public var metadata: ObjectMeta
    public var architecture: Architecture?
    public var qemu: QemuConfig
    public var lifecycle: Lifecycle
}

public struct ConfigMap: Sendable {
    public var metadata: ObjectMeta
    /// `data` and `binaryData` together; keys are unique across both.
    public var entries: [String: [UInt8]]
    public var keyOrder: [String]
}

/// A Kubernetes Secret (`v1`): `data` (base64) with `stringData` merged
/// over it, as the API server does. Only VMs read it: `secret` volumes and
/// cloud-init's `secretRef`/`networkDataSecretRef`.
public struct Secret: Sendable {
    public var metadata: ObjectMeta
    public var entries: [String: [UInt8]]
    public var keyOrder: [String]
}

public struct VirtualTargetInstance: Sendable {
    /// The VM kinds an instance (a VM pool's member) or a pool may name: the
    /// VM runs as that instance, renamed, with the instance's readiness.
    public static let vmKinds = ["VirtualMachine", "Machine"]
    public var metadata: ObjectMeta
    public var targetKind: String
    public var targetName: String
    public var lifecycle: Lifecycle
}

/// Warm instances of one target, handed out by `vtarget claim`.
public struct VirtualTargetPool: Sendable {
    public enum Recycle: String, Sendable, CaseIterable { case snapshot, restart }
    public var metadata: ObjectMeta
    /// `QemuVirtualTarget`, or a VM kind (`VirtualTargetInstance.vmKinds`).
    public var targetKind: String = "QemuVirtualTarget"
    public var targetName: String
    public var minReady: Int
    public var maxInstances: Int
    public var recycle: Recycle
    /// How long a claim lasts before the instance goes back (nil: until released).
    public var claimTTLSeconds: Double?
    /// A VM pool's: when a member's guest has booted (KubeVirt's
    /// readinessProbe is not honoured yet); its snapshot is taken then.
    public var readiness: Readiness?

    /// A member's name: the pool's, a dash and `memberSuffixLength`
    /// characters of `unique` (the supervisor's random hex).
    public func memberName(unique: String) -> String {
        metadata.name + "-" + String(unique.prefix(Self.memberSuffixLength))
    }

    public static let memberSuffixLength = 5
}

public enum Resource: Sendable {
    case target(QemuVirtualTarget)
    case configMap(ConfigMap)
    case secret(Secret)
    case instance(VirtualTargetInstance)
    case pool(VirtualTargetPool)
    /// The VM kinds (contract section 5), resolved into `definition`s by the decoder.
    case virtualMachine(KubeVirtVirtualMachine)
    case virtualMachineInstance(KubeVirtVirtualMachineInstance)
    case instancetype(VMInstancetype)
    case preference(VMPreference)
    case machine(VitiMachine)
    case machineClass(VitiMachineClass)
    /// A PersistentVolumeClaim or DataVolume: a named volume's size and content.
    case volumeClaim(VolumeClaim)

    public var metadata: ObjectMeta {
        switch self {
        case .target(let t): return t.metadata
        case .configMap(let c): return c.metadata
        case .secret(let s): return s.metadata
        case .instance(let i): return i.metadata
        case .pool(let p): return p.metadata
        case .virtualMachine(let v): return v.metadata
        case .virtualMachineInstance(let v): return v.metadata
        case .instancetype(let t): return t.metadata
        case .preference(let p): return p.metadata
        case .machine(let m): return m.metadata
        case .machineClass(let c): return c.metadata
        case .volumeClaim(let c): return c.metadata
        }
    }

    public var kind: String {
        switch self {
        case .target: return "QemuVirtualTarget"
        case .configMap: return "ConfigMap"
        case .secret: return "Secret"
        case .instance: return "VirtualTargetInstance"
        case .pool: return "VirtualTargetPool"
        case .virtualMachine: return "VirtualMachine"
        case .virtualMachineInstance: return "VirtualMachineInstance"
        case .instancetype(let t): return t.kind
        case .preference(let p): return p.kind
        case .machine: return "Machine"
        case .machineClass: return "MachineClass"
        case .volumeClaim(let c): return c.kind
        }
    }

    /// A VM kind's resolved definition (nil for every other kind).
    public var vmDefinition: VMDefinition? {
        switch self {
        case .virtualMachine(let v): return v.definition
        case .virtualMachineInstance(let v): return v.definition
        case .machine(let m): return m.definition
        default: return nil
        }
    }
}
