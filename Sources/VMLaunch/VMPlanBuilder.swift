import MachineCatalog
import QEMULaunch
import VMSpec
import YAMLTree

/// One plan in the making: the argv so far and every problem found.
struct VMPlanBuilder {
    let vm: VMDefinition
    let host: VMHostInputs
    var args: [String] = []
    var channels: [PlannedChannel] = []
    var blockDrives: [BlockDrive] = []
    var passedFiles: [PassedFile] = []
    var fdSets = 0
    var badInput: [Diagnostic] = []
    var missing: [Diagnostic] = []
    /// Block node names and the disks' device ids, as boards hand them out.
    var nodeNames = QEMUIdentifiers()
    /// netdev and NIC ids, apart, so a disk and an interface of one name both keep theirs.
    var netNames = QEMUIdentifiers()
    var family: MachineFamily = .q35
    /// Controllers made on first use: their ids.
    var controllers: Set<String> = []

    static let scsiController = "vt-scsi"
    static let usbController = "vt-usb"
    static let sataController = "vt-sata"
    /// The boards' name for the snapshot scratch (QEMULaunch's DrivePlanner).
    static let snapshotDrive = "vt.snapshot"

    init(vm: VMDefinition, host: VMHostInputs) {
        self.vm = vm
        self.host = host
    }

    mutating func fail(_ field: String, _ message: String, at location: SourceLocation? = nil) {
        badInput.append(Diagnostic(.error, at: location ?? vm.metadata.location, field: field, message))
    }

    mutating func lack(_ field: String, _ message: String, at location: SourceLocation? = nil) {
        missing.append(Diagnostic(.error, at: location ?? vm.metadata.location, field: field, message))
    }

    mutating func build() {
        guard let family = MachineFamily(vm.machineType) else {
            fail("domain.machine.type", "unknown machine type \"\(vm.machineType)\"; valid: q35, pc (x86_64), virt (aarch64), or a versioned pc-q35-*, pc-i440fx-*, virt-*")
            return
        }
        self.family = family
        if family.architecture != vm.architecture {
            fail("domain.machine.type", "machine \"\(vm.machineType)\" is not for \(vm.architecture.rawValue): use "
                 + (vm.architecture == .amd64 ? "q35 or pc" : "virt"))
            return
        }
        args += ["-name", QEMUOption(vm.metadata.name, []).description]
        var machine = [("accel", host.accel.rawValue)]
        if family == .virt { machine.append(("gic-version", "max")) }
        args += ["-machine", QEMUOption(vm.machineType, machine).description]
        planCPU()
        args += ["-nodefaults", "-no-user-config", "-display", "none", "-S"]
        if host.qemuSandbox {
            args += ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
        }
        planChannels()
        planFirmware()
        planDisks()
        planSnapshotImage()
        planInterfaces()
        planGuestAgent()
        planGraphics()
        if vm.rng {
            args += ["-object", QEMUJSON.argument(QEMUProperties([("qom-type", .string("rng-builtin")), ("id", .string("vt-rng"))])),
                     "-device", QEMUJSON.argument(QEMUProperties([("driver", .string("virtio-rng-pci")), ("id", .string("vt-rng-dev")),
                                                                   ("rng", .string("vt-rng"))]))]
        }
    }

    /// `-cpu`, `-smp`, `-m`. KubeVirt's default model is host-model: the
    /// host's CPU under KVM; under TCG the closest is `max` (and `virt`'s
    /// own default, a 32-bit Cortex-A15, could not run an arm64 guest).
    mutating func planCPU() {
        let kvm = host.accel == .kvm
        let model: String
        switch vm.cpu.model {
        case nil, "host-model", "host-passthrough": model = kvm ? "host" : "max"
        case "host":
            if !kvm { fail("domain.cpu.model", "cpu model \"host\" needs KVM, and this VM runs under TCG; use host-model (max under TCG) or a named model") }
            model = "host"
        case let named?: model = named
        }
        args += ["-cpu", model]
        let c = vm.cpu
        if c.sockets < 1 || c.cores < 1 || c.threads < 1 {
            fail("domain.cpu", "sockets, cores and threads must each be 1 or more (got \(c.sockets), \(c.cores), \(c.threads))")
        }
        args += ["-smp", QEMUOption(nil, [("cpus", "\(c.vcpus)"), ("sockets", "\(c.sockets)"), ("cores", "\(c.cores)"),
                                          ("threads", "\(c.threads)")]).description]
        if vm.memoryBytes < 1 << 20 {
            fail(vm.memoryField, "guest memory must be at least 1Mi (got \(vm.memoryBytes) bytes)", at: vm.memoryLocation)
        }
        if let why = HostMemory.refusal(guestBytes: vm.memoryBytes, hostBytes: host.hostMemoryBytes) {
            fail(vm.memoryField, why, at: vm.memoryLocation)
        }
        args += ["-m", QEMUIdentifiers.memoryArgument(vm.memoryBytes)]
    }

    /// QMP on a socket pair (fd 3) and the console on a FIFO pair, exactly
    /// as a board's monitor and UART.
    mutating func planChannels() {
        args += ["-chardev", QEMUOption("socket", [("id", "vt-qmp"), ("fd", "3")]).description, "-mon", "chardev=vt-qmp,mode=control"]
        channels.append(.planned(device: "qmp", role: .qmp, transport: .socketPair(childFD: 3), chardevID: "vt-qmp"))
        guard vm.serialConsole else { return }
        let id = "serial-" + VMLaunchPlanner.consoleDevice
        let path = host.instanceDirectory + "/" + id
        args += ["-chardev", QEMUOption("pipe", [("id", id), ("path", here(path))]).description]
        // The first serial port: isa-serial (COM1) on x86, the PL011 on virt.
        args += ["-serial", "chardev:" + id]
        channels.append(.planned(device: VMLaunchPlanner.consoleDevice, role: .serial(uart: 0), transport: .fifoPair(path: path), chardevID: id))
    }

    /// EFI as two flash nodes (the code read-only, this VM's vars writable),
    /// then `-kernel`/`-initrd`/`-append` for kernelBoot.
    mutating func planFirmware() {
        switch vm.firmware {
        case .bios:
            if family == .virt {
                fail("domain.firmware.bootloader", "the virt machine has no BIOS; use bootloader: {efi: {secureBoot: false}}")
            }
        case .efi(secureBoot: true):
            fail("domain.firmware.bootloader.efi.secureBoot",
                 "Secure Boot is not supported (it needs SMM and enrolled keys); set secureBoot: false")
        case .efi(secureBoot: false):
            guard let efi = host.efi else {
                lack("domain.firmware.bootloader.efi", "no \(family == .virt ? "AAVMF" : "OVMF") firmware was resolved for this VM (install Debian's \(family == .virt ? "qemu-efi-aarch64" : "ovmf"))")
                break
            }
            let code = blockNodes("vt.efi-code", path: efi.code, format: .raw, readOnly: true, device: false)
            let vars = blockNodes("vt.efi-vars", path: efi.vars, format: efi.varsFormat, readOnly: false, device: false)
            args += ["-machine", QEMUOption(nil, [("pflash0", code.formatNode), ("pflash1", vars.formatNode)]).description]
        }
        if let kb = vm.kernelBoot {
            guard let files = host.kernel else {
                lack("domain.firmware.kernelBoot", "no kernel was extracted from \(kb.image)")
                return
            }
            if kb.initrdPath != nil, files.initrd == nil {
                lack("domain.firmware.kernelBoot.container.initrdPath", "no initrd was extracted from \(kb.image)")
            }
            args += ["-kernel", here(files.kernel)]
            if let initrd = files.initrd { args += ["-initrd", here(initrd)] }
            if let append = kb.kernelArgs { args += ["-append", append] }
        }
    }

    /// Both -blockdev nodes of one file, and its drive record.
    mutating func blockNodes(_ name: String, path: String, format: VMHostInputs.DiskFormat, readOnly: Bool, device: Bool,
                             base: VMHostInputs.BaseImage? = nil) -> BlockDrive {
        let drive = BlockDrive.planned(name: name, fileNode: nodeNames.claim("file", name), formatNode: nodeNames.claim("fmt", name),
                                       deviceID: device ? nodeNames.claim("dev", name) : nil, readOnly: readOnly)
        var baseNode: String?
        if let base {
            // The image under an overlay: read-only nodes of its own, named
            // as the overlay's backing, so QEMU never follows the overlay's
            // recorded backing path.
            let file = nodeNames.claim("basefile", name), fmt = nodeNames.claim("base", name)
            args += ["-blockdev", QEMUJSON.argument(BlockdevNode.file(file, path: reach(base.path, writable: false), readOnly: true)),
                     "-blockdev", QEMUJSON.argument(BlockdevNode.format(base.format.driver, fmt, over: file, readOnly: true))]
            baseNode = fmt
        }
        args += ["-blockdev", QEMUJSON.argument(BlockdevNode.file(drive.fileNode, path: reach(path, writable: !readOnly), readOnly: readOnly))]
        if let baseNode {
            var node = QEMUProperties([("driver", .string(format.driver.rawValue)), ("node-name", .string(drive.formatNode)),
                                       ("file", .string(drive.fileNode)), ("backing", .string(baseNode))])
            if readOnly { node["read-only"] = .bool(true) }
            args += ["-blockdev", QEMUJSON.argument(node)]
        } else {
            args += ["-blockdev", QEMUJSON.argument(BlockdevNode.format(format.driver, drive.formatNode, over: drive.fileNode, readOnly: readOnly))]
        }
        blockDrives.append(drive)
        return drive
    }

    /// How QEMU, in its own directory, names one of its files.
    func here(_ path: String) -> String { LaunchPlan.relative(path, to: host.instanceDirectory) }

    /// A file QEMU opens through its block layer: by a path relative to its
    /// directory when it lives there, else (with `passImagesAsFDs`) as an
    /// fd set vtarget opens for it: one read-only fd, and a read-write one
    /// too when QEMU may write, as boards' disks go.
    mutating func reach(_ path: String, writable: Bool) -> String {
        let inside = here(path)
        guard inside == path, host.passImagesAsFDs else { return inside }
        fdSets += 1
        for w in writable ? [true, false] : [false] {
            let fd = 3 + Int32(channels.filter { if case .socketPair = $0.transport { return true } else { return false } }.count + passedFiles.count)
            passedFiles.append(.planned(path: path, childFD: fd, writable: w))
            args += ["-add-fd", QEMUOption(nil, [("fd", "\(fd)"), ("set", "\(fdSets)")]).description]
        }
        return "/dev/fdset/\(fdSets)"
    }

    /// A controller's `-device`, the first time a disk needs it.
    mutating func controller(_ id: String, driver: String) {
        guard controllers.insert(id).inserted else { return }
        args += ["-device", QEMUJSON.argument(QEMUProperties([("driver", .string(driver)), ("id", .string(id))]))]
    }

    /// qemu-guest-agent: a virtio-serial port named as the agent expects,
    /// on a unix socket QEMU listens on.
    mutating func planGuestAgent() {
        args += ["-chardev", QEMUOption("socket", [("id", "vt-qga"), ("path", here(host.guestAgentSocket)), ("server", "on"), ("wait", "off")]).description]
        controller("vt-virtio-serial", driver: "virtio-serial-pci")
        args += ["-device", QEMUJSON.argument(QEMUProperties([
            ("driver", .string("virtserialport")), ("id", .string("vt-qga-port")), ("bus", .string("vt-virtio-serial.0")),
            ("chardev", .string("vt-qga")), ("name", .string("org.qemu.guest_agent.0")),
        ]))]
    }

    /// A display and its VNC server on a unix socket. arm64 has no VGA and
    /// no PS/2: virtio-gpu, and a USB keyboard and tablet.
    mutating func planGraphics() {
        guard vm.graphics else { return }
        if family == .virt {
            args += ["-device", QEMUJSON.argument(QEMUProperties([("driver", .string("virtio-gpu-pci")), ("id", .string("vt-video"))]))]
            controller(Self.usbController, driver: "qemu-xhci")
            for (driver, id) in [("usb-kbd", "vt-keyboard"), ("usb-tablet", "vt-tablet")] {
                args += ["-device", QEMUJSON.argument(QEMUProperties([("driver", .string(driver)), ("id", .string(id)),
                                                                      ("bus", .string(Self.usbController + ".0"))]))]
            }
        } else {
            args += ["-device", QEMUJSON.argument(QEMUProperties([("driver", .string("VGA")), ("id", .string("vt-video"))]))]
        }
        args += ["-vnc", QEMUOption("unix:" + here(host.vncSocket), []).description]
    }
}
