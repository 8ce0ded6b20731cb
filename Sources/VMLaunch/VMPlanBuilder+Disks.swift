import QEMULaunch
import VMSpec
import YAMLTree

extension VMPlanBuilder {
    /// Every disk as a file node, a format node and a device on its bus,
    /// in the order written. Boot order: the disks' `bootOrder` when any
    /// disk has one (the others do not boot), else the order written.
    mutating func planDisks() {
        let ordered = vm.disks.contains { $0.bootOrder != nil }
        var bootOrders: [Int: String] = [:]
        var sataSlot = 0
        for (index, disk) in vm.disks.enumerated() {
            let field = "domain.devices.disks[\(disk.name)]"
            let at = disk.location
            var ok = true
            switch (disk.kind, disk.bus) {
            case (.cdrom, .virtio), (.cdrom, .usb):
                fail(field + ".cdrom.bus", "a cdrom cannot be on bus \(disk.bus.rawValue) (QEMU has no \(disk.bus.rawValue) CD-ROM); use sata or scsi", at: at)
                ok = false
            case (.lun, .virtio), (.lun, .sata), (.lun, .usb):
                fail(field + ".lun.bus", "a lun is a SCSI device: its bus must be scsi, not \(disk.bus.rawValue)", at: at)
                ok = false
            case (.disk, .sata) where disk.readonly:
                fail(field + ".disk.readonly", "QEMU's SATA disk (ide-hd) cannot be read-only; use bus virtio or scsi, or a cdrom", at: at)
                ok = false
            default: break
            }
            if let order = disk.bootOrder {
                if order < 1 {
                    fail(field + ".bootOrder", "bootOrder must be 1 or more (got \(order))", at: at)
                } else if let other = bootOrders[order] {
                    fail(field + ".bootOrder", "bootOrder \(order) is already disk \"\(other)\"'s; each disk needs its own", at: at)
                } else {
                    bootOrders[order] = disk.name
                }
            }
            var slot: Int?
            if disk.bus == .sata, ok {
                if sataSlot >= family.sataSlots {
                    fail(field + ".\(disk.kind.rawValue).bus", "\(vm.machineType) has \(family.sataSlots) SATA/IDE slots and all are in use"
                         + (family == .pc ? " (pc's IDE: two buses of two); use q35, or bus virtio or scsi" : "; use bus virtio or scsi"), at: at)
                    ok = false
                } else {
                    slot = sataSlot
                    sataSlot += 1
                }
            }
            guard let backing = host.disks[disk.name] else {
                lack(field, "no file was prepared for disk \"\(disk.name)\"", at: at)
                continue
            }
            guard ok else { continue }
            let readOnly = disk.readonly || disk.kind == .cdrom || backing.readOnly
            let drive = blockNodes(disk.name, path: backing.path, format: backing.format, readOnly: readOnly, device: true, base: backing.base)
            var props = QEMUProperties([("id", .string(drive.deviceID!)), ("drive", .string(drive.formatNode))])
            switch disk.bus {
            case .virtio:
                props["driver"] = .string("virtio-blk-pci")
            case .sata:
                if family == .virt { controller(Self.sataController, driver: "ich9-ahci") }
                let address = family.sataAddress(slot!, controller: Self.sataController)
                props["driver"] = .string(disk.kind == .cdrom ? "ide-cd" : "ide-hd")
                props["bus"] = .string(address.bus)
                if let unit = address.unit { props["unit"] = .int(unit) }
            case .scsi:
                controller(Self.scsiController, driver: "virtio-scsi-pci")
                props["driver"] = .string(disk.kind == .cdrom ? "scsi-cd" : "scsi-hd")
                props["bus"] = .string(Self.scsiController + ".0")
            case .usb:
                controller(Self.usbController, driver: "qemu-xhci")
                props["driver"] = .string("usb-storage")
                props["bus"] = .string(Self.usbController + ".0")
            }
            if let bootIndex = ordered ? disk.bootOrder : index + 1 { props["bootindex"] = .int(bootIndex) }
            if let serial = disk.serial { props["serial"] = .string(serial) }
            args += ["-device", QEMUJSON.argument(props)]
        }
    }

    /// The pool member's snapshot scratch: a writable qcow2 node, no device.
    mutating func planSnapshotImage() {
        guard let path = host.snapshotImage else { return }
        _ = blockNodes(Self.snapshotDrive, path: path, format: .qcow2, readOnly: false, device: false)
    }
}
