import MachineCatalog
import TargetSpec
import YAMLTree

/// Spec + profile + host → LaunchPlan. Errors point at the spec field that
/// cannot be honoured on this board or host.
public struct LaunchPlanner: Sendable {
    public var host: HostFacts
    public var options: LaunchOptions

    public init(host: HostFacts, options: LaunchOptions = LaunchOptions()) {
        self.host = host
        self.options = options
    }

    /// `instanceDirectory` holds what QEMU creates itself (the GDB socket).
    public func plan(
        _ target: QemuVirtualTarget, profile: MachineProfile, drives: [ResolvedDrive], instanceDirectory: String
    ) throws(DiagnosticError) -> LaunchPlan {
        var diags: [Diagnostic] = []
        func fail(_ loc: SourceLocation?, _ path: String, _ msg: String) {
            diags.append(Diagnostic(.error, at: loc, field: path, msg))
        }
        let q = target.qemu
        var args: [String] = []
        let warnings: [String] = []

        args += ["-name", QEMUOption(target.metadata.name, []).description]
        args += ["-machine", QEMUOption(profile.qemuMachine, []).description]

        let accel = chooseAccel(q, profile, fail)
        args += ["-accel", accel]
        args += ["-nodefaults", "-no-user-config", "-display", "none", "-S"]
        if options.qemuSandbox {
            args += ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
        }
        if profile.cpu.selectable {
            let model = q.cpu?.value ?? profile.cpu.defaultModel
            if model == "host", accel != "kvm" {
                fail(q.cpu?.location, q.cpu?.path ?? "spec.qemuConfig.cpu", "cpu \"host\" needs KVM, and this target runs under \(accel)")
            }
            args += ["-cpu", model]
        }
        if profile.memory.fixedBytes == nil, let bytes = q.memoryBytes?.value ?? profile.memory.defaultBytes {
            args += ["-m", Self.memoryArgument(bytes)]
        }
        if let smp = q.smp?.value, profile.maxCPUs > 1 {
            if smp.cores == nil, smp.sockets == nil, smp.threads == nil {
                args += ["-smp", "\(smp.cpus)"]
            } else {
                var pairs = [("cpus", "\(smp.cpus)")]
                if let s = smp.sockets { pairs.append(("sockets", "\(s)")) }
                if let c = smp.cores { pairs.append(("cores", "\(c)")) }
                if let t = smp.threads { pairs.append(("threads", "\(t)")) }
                args += ["-smp", QEMUOption(nil, pairs).description]
            }
        }

        // The QMP monitor on a socket pair, then one chardev per UART device on a FIFO pair.
        var channels: [PlannedChannel] = []
        var nextFD: Int32 = 3
        func channel(_ device: String, _ role: PlannedChannel.Role, _ id: String) -> PlannedChannel {
            let spec = role == .qmp ? nil : q.devices.first { $0.name == device }
            let transport: PlannedChannel.Transport
            if role == .qmp {
                transport = .socketPair(childFD: nextFD)
                args += ["-chardev", QEMUOption("socket", [("id", id), ("fd", "\(nextFD)")]).description]
                nextFD += 1
            } else {
                let path = instanceDirectory + "/" + id
                transport = .fifoPair(path: path)
                args += ["-chardev", QEMUOption("pipe", [("id", id), ("path", path)]).description]
            }
            let c = PlannedChannel(device: device, role: role, transport: transport, chardevID: id,
                                   rfc2217Port: spec?.rfc2217Port, canFaults: spec?.canFaults)
            channels.append(c)
            return c
        }
        _ = channel("qmp", .qmp, "vt-qmp")
        args += ["-mon", "chardev=vt-qmp,mode=control"]

        var uartOwner: [Int: String] = [:]
        var uartChardev: [Int: String] = [:]
        func claim(_ uart: Int, _ device: Device) -> Bool {
            if let owner = uartOwner[uart] {
                fail(device.location, device.path, "UART \(uart) (\(profile.uarts[uart])) is already used by device \"\(owner)\"")
                return false
            }
            uartOwner[uart] = device.name
            return true
        }
        // Explicit indices first, then the rest in order.
        var pending: [Device] = []
        for d in q.devices {
            switch d.kind {
            case .serial(let index?):
                if index < profile.uarts.count, claim(index, d) {
                    uartChardev[index] = channel(d.name, .serial(uart: index), "serial-\(d.name)").chardevID
                }
            case .can(let bus, let uart):
                guard let u = uart ?? profile.canUART, u < profile.uarts.count else { continue }
                if claim(u, d) {
                    uartChardev[u] = channel(d.name, .can(bus: bus, uart: u), "can-\(d.name)").chardevID
                }
            case .serial(nil):
                pending.append(d)
            case .gdb:
                continue
            }
        }
        for d in pending {
            guard let free = (0..<profile.uarts.count).first(where: { uartOwner[$0] == nil }) else {
                fail(d.location, d.path, "\(profile.name) has \(profile.uarts.count) UARTs (" + profile.uarts.joined(separator: ", ") + ") and all are in use")
                continue
            }
            _ = claim(free, d)
            uartChardev[free] = channel(d.name, .serial(uart: free), "serial-\(d.name)").chardevID
        }
        if let top = uartChardev.keys.max() {
            for i in 0...top {
                args += ["-serial", uartChardev[i].map { "chardev:\($0)" } ?? "null"]
            }
        }
        var gdbPath: String?
        if q.devices.contains(where: { $0.kind == .gdb }) {
            let path = instanceDirectory + "/gdb.sock"
            gdbPath = path
            args += ["-chardev", QEMUOption("socket", [("id", "vt-gdb"), ("path", path), ("server", "on"), ("wait", "off")]).description]
            args += ["-gdb", "chardev:vt-gdb"]
        }

        var pflashUnit = 0
        var passed: [PassedFile] = []
        var fdSets = 0
        for r in drives {
            var r = r
            if options.passImagesAsFDs, r.drive.kind == .disk || r.drive.kind == .cdrom {
                // QEMU probes read-only before opening read-write, and a set
                // hands out only fds of the asked access mode: a disk needs both.
                fdSets += 1
                let set = fdSets
                for writable in r.drive.kind == .disk ? [true, false] : [false] {
                    let file = PassedFile(path: r.path, childFD: nextFD, writable: writable)
                    nextFD += 1
                    passed.append(file)
                    args += ["-add-fd", "fd=\(file.childFD),set=\(set)"]
                }
                r.path = "/dev/fdset/\(set)"
            }
            args += driveArguments(r, profile, &pflashUnit, fail)
        }
        if var path = options.snapshotImage {
            if options.passImagesAsFDs {
                fdSets += 1
                for writable in [true, false] {
                    let file = PassedFile(path: path, childFD: nextFD, writable: writable)
                    nextFD += 1
                    passed.append(file)
                    args += ["-add-fd", "fd=\(file.childFD),set=\(fdSets)"]
                }
                path = "/dev/fdset/\(fdSets)"
            }
            args += ["-drive", QEMUOption(nil, [("if", "none"), ("id", "vt-snapshot"), ("format", "qcow2"), ("file", path)]).description]
        }
        for e in q.extraArgs { args.append(e.value) }

        if diags.contains(where: { $0.severity == .error }) { throw DiagnosticError(diags) }
        var plan = LaunchPlan(
            targetName: target.metadata.name, namespace: target.metadata.namespace,
            binary: profile.qemuBinary, arguments: args, channels: channels, passedFiles: passed, gdbSocketPath: gdbPath,
            accel: accel, profile: profile.name, warnings: warnings)
        plan.guestMemoryBytes = profile.memory.fixedBytes ?? q.memoryBytes?.value ?? profile.memory.defaultBytes ?? 0
        plan.cpus = q.smp?.value.cpus ?? 1
        plan.snapshotImage = options.snapshotImage
        return plan
    }

    private func chooseAccel(_ q: QemuConfig, _ profile: MachineProfile, _ fail: (SourceLocation?, String, String) -> Void) -> String {
        let native = profile.architectures.contains(host.architecture)
            || (host.architecture == .x86_64 && profile.architectures.contains(.i386))
        switch q.accel {
        case .tcg: return "tcg"
        case .kvm:
            if !native {
                fail(q.machine.location, "spec.qemuConfig.accel", "kvm runs guests of the host's architecture (\(host.architecture.rawValue)) only; use tcg or auto")
            } else if !host.kvmUsable {
                fail(q.machine.location, "spec.qemuConfig.accel", "KVM is not usable on this host (see `vtarget machines`); use tcg or auto")
            }
            return "kvm"
        case .auto:
            return native && host.kvmUsable && profile.accelerators.contains("kvm") ? "kvm" : "tcg"
        }
    }

    private func driveArguments(
        _ r: ResolvedDrive, _ profile: MachineProfile, _ pflashUnit: inout Int,
        _ fail: (SourceLocation?, String, String) -> Void
    ) -> [String] {
        let d = r.drive
        func loader() -> [String] { ["-device", QEMUOption("loader", [("file", r.path)]).description] }
        func image(_ flag: String) -> [String] {
            if r.format == .qcow2 {
                fail(d.location, d.path + ".format", "a qcow2 image cannot be loaded as \(d.kind.rawValue)")
                return []
            }
            return r.format == .ihex ? loader() : [flag, r.path]
        }
        switch d.kind {
        case .kernel:
            return image("-kernel")
        case .bios:
            return image("-bios")
        case .pflash:
            switch profile.pflash {
            case .kernel: return image("-kernel")
            case .bios: return image("-bios")
            case .pflash:
                defer { pflashUnit += 1 }
                return ["-drive", QEMUOption(nil, [("if", "pflash"), ("unit", "\(pflashUnit)"), ("format", "raw"), ("file", r.path)]).description]
            }
        case .disk, .cdrom:
            let id = "drive-\(d.name)"
            let format = r.format == .qcow2 ? "qcow2" : "raw"
            if profile.diskDevice == "sd-card", d.kind == .disk {
                return ["-drive", QEMUOption(nil, [("if", "sd"), ("format", format), ("file", r.path)]).description]
            }
            var pairs = [("if", "none"), ("id", id), ("format", format), ("file", r.path)]
            if d.kind == .cdrom { pairs += [("media", "cdrom"), ("readonly", "on")] }
            let device = (d.kind == .disk ? profile.diskDevice : profile.cdromDevice) ?? "virtio-blk-pci"
            return ["-drive", QEMUOption(nil, pairs).description,
                    "-device", QEMUOption(device, [("drive", id)]).description]
        }
    }

    /// `-m` in the largest exact unit; QEMU reads a bare number as MiB.
    static func memoryArgument(_ bytes: UInt64) -> String {
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30)G" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20)M" }
        if bytes % (1 << 10) == 0 { return "\(bytes >> 10)K" }
        return "\(bytes)B"
    }
}
