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
    /// It is QEMU's working directory, and QEMU's argv names what is in it
    /// relative to it: in its own mount namespace the path that leads there
    /// (`/tmp`, `/run`) may be covered by an empty tmpfs.
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
        // A log named without a directory lives in QEMU's own (each instance its own).
        let recordReplay = options.recordReplay.map { rr -> RecordReplay in
            var rr = rr
            if !rr.logFile.hasPrefix("/") { rr.logFile = instanceDirectory + "/" + rr.logFile }
            return rr
        }
        if let rr = recordReplay {
            // Counting instructions is TCG's; KVM runs the guest on the host's clock.
            if accel != "tcg" {
                fail(q.machine.location, "spec.qemuConfig.accel", "recording and replaying need accel tcg (QEMU counts instructions); this target would use \(accel)")
            }
            var pairs = [("shift", rr.icountShift), ("rr", rr.mode.rawValue), ("rrfile", LaunchPlan.relative(rr.logFile, to: instanceDirectory))]
            if let snapshot = rr.snapshot {
                if options.snapshotImage == nil {
                    fail(q.machine.location, "spec.qemuConfig", "a record/replay snapshot needs a scratch image to keep it in")
                }
                pairs.append(("rrsnapshot", snapshot))
            }
            args += ["-icount", QEMUOption(nil, pairs).description]
        }
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
        if let bytes = profile.memory.fixedBytes ?? q.memoryBytes?.value ?? profile.memory.defaultBytes,
           let why = HostMemory.refusal(guestBytes: bytes, hostBytes: host.memoryBytes) {
            if let given = q.memoryBytes, profile.memory.fixedBytes == nil {
                fail(given.location, given.path, why)
            } else {
                // The profile's own size: the machine chose it, and memory is what changes it.
                fail(q.machine.location, q.machine.path, "machine \"\(profile.name)\" gives the guest \(Quantity.format(bytes)) unless "
                     + "spec.qemuConfig.memory says otherwise: " + why)
            }
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
                args += ["-chardev", QEMUOption("pipe", [("id", id), ("path", LaunchPlan.relative(path, to: instanceDirectory))]).description]
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
            args += ["-chardev", QEMUOption("socket", [("id", "vt-gdb"), ("path", LaunchPlan.relative(path, to: instanceDirectory)),
                                                       ("server", "on"), ("wait", "off")]).description]
            args += ["-gdb", "chardev:vt-gdb"]
        }

        var drivePlanner = DrivePlanner(profile: profile, passImagesAsFDs: options.passImagesAsFDs, nextFD: nextFD,
                                        workingDirectory: instanceDirectory)
        for r in drives { drivePlanner.add(r, fail) }
        if let path = options.snapshotImage { drivePlanner.addSnapshotImage(path) }
        args += drivePlanner.arguments
        for e in q.extraArgs { args.append(e.value) }

        if diags.contains(where: { $0.severity == .error }) { throw DiagnosticError(diags) }
        var plan = LaunchPlan(
            targetName: target.metadata.name, namespace: target.metadata.namespace,
            binary: profile.qemuBinary, arguments: args, channels: channels, passedFiles: drivePlanner.passedFiles, gdbSocketPath: gdbPath,
            accel: accel, profile: profile.name, warnings: warnings)
        plan.guestMemoryBytes = profile.memory.fixedBytes ?? q.memoryBytes?.value ?? profile.memory.defaultBytes ?? 0
        plan.cpus = q.smp?.value.cpus ?? 1
        plan.snapshotImage = options.snapshotImage
        plan.recordReplay = recordReplay
        plan.blockDrives = drivePlanner.blockDrives
        plan.workingDirectory = instanceDirectory
        return plan
    }

    /// The accelerator `plan` would choose for `q` here; nil when it would refuse the spec's choice.
    public func accelerator(for q: QemuConfig, profile: MachineProfile) -> String? {
        var refused = false
        let accel = chooseAccel(q, profile) { _, _, _ in refused = true }
        return refused ? nil : accel
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

    /// `-m` in the largest exact unit; QEMU reads a bare number as MiB.
    static func memoryArgument(_ bytes: UInt64) -> String {
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30)G" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20)M" }
        if bytes % (1 << 10) == 0 { return "\(bytes >> 10)K" }
        return "\(bytes)B"
    }
}
