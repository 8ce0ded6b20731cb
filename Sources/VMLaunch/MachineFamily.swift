import VMSpec

/// The three machines a VM runs on, whatever version suffix KubeVirt's
/// `machine.type` carries (`pc-q35-7.2`, `pc-i440fx-7.2`, `virt-7.2`).
enum MachineFamily: String, Sendable {
    case q35, pc, virt

    init?(_ machineType: String) {
        switch machineType {
        case "q35": self = .q35
        case "pc": self = .pc
        case "virt": self = .virt
        default:
            if machineType.hasPrefix("pc-q35-") { self = .q35 }
            else if machineType.hasPrefix("pc-i440fx-") { self = .pc }
            else if machineType.hasPrefix("virt-") { self = .virt }
            else { return nil }
        }
    }

    var architecture: VMSpec.Architecture { self == .virt ? .arm64 : .amd64 }

    /// SATA ports: q35's built-in AHCI has six, `pc`'s PIIX IDE two buses
    /// of two units, `virt` gets an AHCI controller of six when asked.
    var sataSlots: Int { self == .pc ? 4 : 6 }

    /// The `bus` and `unit` of the SATA/IDE slot `slot` (libvirt's names
    /// for the built-in controllers).
    func sataAddress(_ slot: Int, controller: String) -> (bus: String, unit: Int?) {
        switch self {
        case .q35: return ("ide.\(slot)", nil)
        case .pc: return ("ide.\(slot / 2)", slot % 2)
        case .virt: return ("\(controller).\(slot)", nil)
        }
    }
}
