import YAMLTree

public enum Architecture: String, Sendable, CaseIterable {
    case arm, aarch64, x86_64, i386
}

/// One board, as QEMU provides it: what vtarget may pass on its command line
/// and how firmware gets in. Loaded from `machines/NAME.yaml`.
public struct MachineProfile: Sendable {
    public enum FirmwareLoad: String, Sendable, CaseIterable {
        /// `-kernel`: Cortex-M boards load ELF or raw images this way.
        case kernel
        /// The board's parallel flash, attached as `flashAttachment` says.
        case pflash
        /// `-bios`
        case bios
    }

    /// How a `pflash` drive's -blockdev node reaches the board's flash.
    public enum FlashAttachment: String, Sendable, CaseIterable {
        /// `-machine pflash<unit>=<node>` (pc, q35, virt): the machine links
        /// its flash device to a node defined with -blockdev.
        case property
        /// `-drive if=pflash` naming its nodes: boards that only look up
        /// legacy drives (vexpress) have no property to link.
        case drive
    }

    public enum OutOfRange: String, Sendable, CaseIterable { case clamp, reject }

    public struct CPUPolicy: Sendable {
        public var defaultModel: String
        public var allowed: [String]
        /// False when the SoC fixes the core: `-cpu` is then never passed.
        public var selectable: Bool
    }

    public struct MemoryPolicy: Sendable {
        /// Set when the board's RAM is part of the SoC; `-m` is then never passed.
        public var fixedBytes: UInt64?
        public var defaultBytes: UInt64?
        public var minBytes: UInt64?
        public var maxBytes: UInt64?
        public var outOfRange: OutOfRange
    }

    public var name: String
    public var summary: String
    public var architectures: [Architecture]
    public var qemuBinary: String
    public var qemuMachine: String
    public var aliases: [String]
    /// Shown whenever the profile is used: the board is a stand-in for another.
    public var warning: String?
    public var cpu: CPUPolicy
    public var memory: MemoryPolicy
    public var maxCPUs: Int
    /// The board's UARTs in QEMU's `-serial` order.
    public var uarts: [String]
    public var pflash: FirmwareLoad
    public var flashAttachment: FlashAttachment = .drive
    /// `-device` model for `type: disk` drives; nil when the board has no disk bus.
    public var diskDevice: String?
    public var cdromDevice: String?
    /// UART index carrying SLCAN for CAN devices; nil when no UART can be spared.
    public var canUART: Int?
    public var accelerators: [String]
    /// Whether the guest honours `system_powerdown` (ACPI or PSCI), so a stop
    /// can ask it to shut down before quitting QEMU.
    public var gracefulPowerdown: Bool
    /// Whether `savevm`/`loadvm` work on this board (warm pools restore a
    /// snapshot); false where QEMU's device state cannot be restored.
    public var snapshots: Bool = true
    /// Name of the sample in firmware-samples/ that boots on this board.
    public var sample: String?
    public var location: SourceLocation

    public var architecture: Architecture { architectures[0] }
}
