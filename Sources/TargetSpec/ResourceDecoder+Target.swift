import MachineCatalog
import YAMLTree

extension ResourceDecoder {
    static let qemuConfigFields = ["machine", "cpu", "memory", "smp", "accel", "drives", "devices", "extraArgs"]

    func decodeTarget(_ meta: ObjectMeta, _ spec: MappingReader, _ file: SourceFile, _ context: DecodeContext) -> QemuVirtualTarget? {
        defer { spec.finish() }
        var architecture: Architecture?
        if let v = spec.value("architecture") {
            architecture = enumValue(v, spec.child("architecture"), Architecture.self, context)
        }
        guard let q = spec.mapping("qemuConfig", required: true) else {
            _ = decodeLifecycle(spec, context, serialDevices: nil)
            return nil
        }
        defer { q.finish() }
        guard let machineNode = q.required("machine"),
              let machine = MappingReader.string(machineNode, q.child("machine"), context) else {
            q.accept(Self.qemuConfigFields)
            _ = decodeLifecycle(spec, context, serialDevices: nil)
            return nil
        }
        guard let profile = catalog.lookup(machine, architecture: architecture) else {
            q.accept(Self.qemuConfigFields)
            context.error(machineNode, q.child("machine"), "unknown machine \"\(machine)\"; " + Suggestion.hint(machine, in: catalog.allNames) + " (`vtarget machines` lists them)")
            _ = decodeLifecycle(spec, context, serialDevices: nil)
            return nil
        }
        if let warning = profile.warning { context.warning(machineNode, q.child("machine"), warning) }
        if let architecture, !profile.architectures.contains(architecture) {
            context.error(spec.value("architecture"), spec.child("architecture"),
                          "architecture \(architecture.rawValue) does not match machine \"\(machine)\", which is " + profile.architectures.map(\.rawValue).joined(separator: " or "))
        }

        var cpu: Located<String>?
        if let v = q.value("cpu"), let s = MappingReader.string(v, q.child("cpu"), context) {
            if profile.cpu.allowed.contains(s) {
                cpu = Located(s, at: v.location, path: q.child("cpu"))
            } else {
                context.error(v, q.child("cpu"), "cpu \"\(s)\" is not available on \(profile.name); " + Suggestion.hint(s, in: profile.cpu.allowed))
            }
        }
        let memory = decodeMemory(q, profile, context)
        let smp = decodeSMP(q, profile, context)
        var accel = Accel.auto
        if let v = q.value("accel"), let a = enumValue(v, q.child("accel"), Accel.self, context) {
            accel = a
            if a != .auto, !profile.accelerators.contains(a.rawValue) {
                context.error(v, q.child("accel"), "\(profile.name) runs under " + profile.accelerators.joined(separator: ", ") + " only")
            }
        }
        let drives = decodeDrives(q, profile, file, context)
        let devices = decodeDevices(q, profile, context)
        var extra: [Located<String>] = []
        for (node, path) in q.sequence("extraArgs") ?? [] {
            guard let s = MappingReader.string(node, path, context) else { continue }
            let flag = s.split(separator: "=").first.map(String.init) ?? s
            if Self.forbiddenExtraArgs.contains(flag) || Self.forbiddenExtraArgs.contains("-" + flag) {
                context.error(node, path, "\(s) is never allowed in extraArgs: vtarget owns the monitor, the chardevs, the sandbox and the process")
            } else if !options.allowExtraArgs {
                context.error(node, path, "extraArgs are refused unless --allow-extra-args is given")
            } else {
                extra.append(Located(s, at: node.location, path: path))
            }
        }
        let serialNames = devices.compactMap { d -> String? in
            if case .serial = d.kind { return d.name }
            return nil
        }
        let lifecycle = decodeLifecycle(spec, context, serialDevices: serialNames)
        return QemuVirtualTarget(
            metadata: meta, architecture: architecture,
            qemu: QemuConfig(
                machine: Located(machine, at: machineNode.location, path: q.child("machine")),
                profileName: profile.name, cpu: cpu, memoryBytes: memory, smp: smp, accel: accel,
                drives: drives, devices: devices, extraArgs: extra),
            lifecycle: lifecycle)
    }

    private func decodeMemory(_ q: MappingReader, _ profile: MachineProfile, _ context: DecodeContext) -> Located<UInt64>? {
        guard let v = q.value("memory") else { return nil }
        let path = q.child("memory")
        guard let s = v.scalar, let bytes = bytes(v, path, context) else { return nil }
        let policy = profile.memory
        if let fixed = policy.fixedBytes {
            if bytes != fixed {
                let msg = "\(profile.name) has a fixed \(Quantity.format(fixed)) of RAM"
                if policy.outOfRange == .clamp {
                    context.warning(v, path, "\(s) ignored: \(msg)")
                } else {
                    context.error(v, path, "\(msg); remove memory or set it to \(Quantity.format(fixed))")
                }
            }
            return nil
        }
        var value = bytes
        if let lo = policy.minBytes, bytes < lo { value = lo }
        if let hi = policy.maxBytes, bytes > hi { value = hi }
        if value != bytes {
            let range = "\(Quantity.format(policy.minBytes ?? 1)) to \(Quantity.format(policy.maxBytes ?? bytes))"
            if policy.outOfRange == .clamp {
                context.warning(v, path, "\(s) is outside \(range) on \(profile.name); using \(Quantity.format(value))")
            } else {
                context.error(v, path, "\(s) is outside what \(profile.name) accepts; valid: \(range)")
                return nil
            }
        }
        return Located(value, at: v.location, path: path)
    }

    private func decodeSMP(_ q: MappingReader, _ profile: MachineProfile, _ context: DecodeContext) -> Located<SMP>? {
        guard let v = q.value("smp") else { return nil }
        let path = q.child("smp")
        var smp: SMP
        if case .mapping = v.content, let m = MappingReader(v, path: path, context: context) {
            let cores = m.int("cores", in: 1...1024), sockets = m.int("sockets", in: 1...1024), threads = m.int("threads", in: 1...1024)
            m.finish()
            smp = SMP(cpus: (cores ?? 1) * (sockets ?? 1) * (threads ?? 1), cores: cores, sockets: sockets, threads: threads)
        } else if let n = MappingReader.int(v, path, context, in: 1...1024) {
            smp = SMP(cpus: n)
        } else {
            return nil
        }
        if smp.cpus > profile.maxCPUs {
            context.error(v, path, "\(smp.cpus) CPUs requested; \(profile.name) has at most \(profile.maxCPUs)")
            return nil
        }
        return Located(smp, at: v.location, path: path)
    }

    private func decodeDrives(_ q: MappingReader, _ profile: MachineProfile, _ file: SourceFile, _ context: DecodeContext) -> [Drive] {
        var drives: [Drive] = []
        for (node, path) in q.sequence("drives") ?? [] {
            guard let d = MappingReader(node, path: path, context: context) else { continue }
            defer { d.finish() }
            let nameNode = d.required("name")
            let name = nameNode.flatMap { MappingReader.string($0, d.child("name"), context) }
            if let name, let nameNode, !checkLabel(name, nameNode, d.child("name"), context) { continue }
            var kind: Drive.Kind?
            if let v = d.required("type") { kind = enumValue(v, d.child("type"), Drive.Kind.self, context) }
            var format = Drive.Format.auto
            if let v = d.value("format"), let f = enumValue(v, d.child("format"), Drive.Format.self, context) { format = f }
            let readOnly = d.bool("readonly") ?? false
            guard let srcNode = d.required("source"), let s = MappingReader(srcNode, path: d.child("source"), context: context) else { continue }
            let source = decodeSource(s, kind, file, context)
            s.finish()
            guard let name, let kind, let source else { continue }
            if drives.contains(where: { $0.name == name }) {
                context.error(nameNode, d.child("name"), "drive \"\(name)\" is defined twice")
            }
            if [.pflash, .kernel, .bios].contains(kind), drives.contains(where: { $0.kind == kind }) {
                context.error(node, d.child("type"), "only one \(kind.rawValue) drive is allowed")
            }
            if kind == .disk || kind == .cdrom {
                let device = kind == .disk ? profile.diskDevice : profile.cdromDevice
                if device == nil {
                    context.error(node, d.child("type"), "\(profile.name) has no bus for a \(kind.rawValue); load firmware with type: pflash or kernel")
                }
            } else if format == .qcow2 {
                context.error(d.value("format"), d.child("format"), "qcow2 is for disk and cdrom drives; \(kind.rawValue) images are elf, ihex or raw")
            }
            drives.append(Drive(name: name, kind: kind, format: format, source: source, readOnly: readOnly || kind == .cdrom,
                                location: node.location, path: path))
        }
        return drives
    }

    private func decodeSource(_ s: MappingReader, _ kind: Drive.Kind?, _ file: SourceFile, _ context: DecodeContext) -> Drive.Source? {
        let kinds = ["configMap", "file", "hostPath", "emptyDisk"]
        let present = kinds.filter { s.has($0) }
        guard present.count == 1 else {
            context.error(s.node, s.path, present.isEmpty
                ? "needs exactly one of configMap, file, hostPath, emptyDisk"
                : "has " + present.joined(separator: " and ") + "; give exactly one")
            for o in kinds { _ = s.value(o) }
            return nil
        }
        switch present[0] {
        case "configMap":
            guard let c = s.mapping("configMap", required: true) else { return nil }
            defer { c.finish() }
            guard let name = c.string("name", required: true) else { return nil }
            if let n = c.value("name"), !checkLabel(name, n, c.child("name"), context) { return nil }
            let key = c.string("key")
            if let key, !Self.isConfigKey(key) {
                context.error(c.value("key"), c.child("key"), "\"\(key)\" is not a valid ConfigMap key")
            }
            _ = c.value("optional")
            return .configMap(name: name, key: key)
        case "file":
            guard let v = s.value("file"), let p = MappingReader.string(v, s.child("file"), context) else { return nil }
            guard let resolved = PathRules.resolveRelative(p, in: file.directory) else {
                context.error(v, s.child("file"), "\"\(p)\" escapes the directory of \(file.path); file sources are relative to their YAML file and stay inside its directory (use hostPath with --allow-host-paths for other files)")
                return nil
            }
            return .file(path: resolved)
        case "hostPath":
            let v = s.value("hostPath")!
            var path: String?
            if case .mapping = v.content, let h = MappingReader(v, path: s.child("hostPath"), context: context) {
                path = h.string("path", required: true)
                _ = h.value("type")
                h.finish()
            } else {
                path = MappingReader.string(v, s.child("hostPath"), context)
            }
            guard let path else { return nil }
            guard path.hasPrefix("/") else {
                context.error(v, s.child("hostPath"), "hostPath must be absolute, got \"\(path)\"")
                return nil
            }
            guard options.allowHostPaths else {
                context.error(v, s.child("hostPath"), "hostPath sources are refused unless --allow-host-paths is given")
                return nil
            }
            return .hostPath(path: PathRules.normalize(path))
        default:
            guard let e = s.mapping("emptyDisk", required: true) else { return nil }
            defer { e.finish() }
            guard let v = e.required("capacity") else { return nil }
            guard let bytes = bytes(v, e.child("capacity"), context) else { return nil }
            if let kind, kind != .disk {
                context.error(e.node, s.child("emptyDisk"), "emptyDisk is for type: disk only")
            }
            return .emptyDisk(capacityBytes: bytes)
        }
    }

    /// Device names whose files would take the instance's own: `qmp` would
    /// be `qmp.sock`, the QMP proxy (the instance then never becomes Ready);
    /// `sidecar-x` would log to `logs/sidecar-x.log`, sidecar x's log. The
    /// others are the stems of the rest of the directory (InstanceLayout),
    /// kept apart so a listing of it reads unambiguously.
    public static let reservedDeviceNames = ["instance", "logs", "qemu", "qmp"]
    public static let reservedDevicePrefixes = ["sidecar-"]

    public static func isReservedDeviceName(_ name: String) -> Bool {
        reservedDeviceNames.contains(name) || reservedDevicePrefixes.contains { name.hasPrefix($0) }
    }

    private func decodeDevices(_ q: MappingReader, _ profile: MachineProfile, _ context: DecodeContext) -> [Device] {
        var devices: [Device] = []
        for (node, path) in q.sequence("devices") ?? [] {
            guard let d = MappingReader(node, path: path, context: context) else { continue }
            defer { d.finish() }
            let nameNode = d.required("name")
            let name = nameNode.flatMap { MappingReader.string($0, d.child("name"), context) }
            if let name, let nameNode, !checkLabel(name, nameNode, d.child("name"), context) { continue }
            if let name, let nameNode, Self.isReservedDeviceName(name) {
                context.error(nameNode, d.child("name"), "device name \"\(name)\" is reserved: a device's files are NAME.sock, NAME.force.sock and logs/NAME.log beside the instance's own qmp.sock, instance.json, logs/, qemu/ and logs/sidecar-*.log; reserved: " + Self.reservedDeviceNames.joined(separator: ", ") + " and names starting with " + Self.reservedDevicePrefixes.joined(separator: ", "))
                continue
            }
            guard let typeNode = d.required("type"), let type = MappingReader.string(typeNode, d.child("type"), context) else { continue }
            let kind: Device.Kind
            var rfc2217: Int?
            var canFaults: CANFaultSpec?
            switch type {
            case "serial":
                if let v = d.value("rfc2217") {
                    switch v.scalar {
                    case "true": rfc2217 = 0
                    case "false": rfc2217 = nil
                    default:
                        if let s = v.scalar, let n = Int(s), (1...65535).contains(n) {
                            rfc2217 = n
                        } else {
                            context.error(v, d.child("rfc2217"), "expected true, false or a loopback TCP port from 1 to 65535, got \(describe(v))")
                        }
                    }
                }
                let index = d.int("index", in: 0...63)
                if let index, index >= profile.uarts.count {
                    context.error(d.value("index"), d.child("index"), "\(profile.name) has \(profile.uarts.count) UARTs (" + profile.uarts.joined(separator: ", ") + "); valid: 0 to \(profile.uarts.count - 1)")
                }
                kind = .serial(index: index)
            case "socket", "can":
                var bus = "default"
                if let v = d.value("bus"), let b = MappingReader.string(v, d.child("bus"), context) {
                    if checkLabel(b, v, d.child("bus"), context) { bus = b }
                }
                if let fm = d.mapping("faults") {
                    var f = CANFaultSpec()
                    func share(_ key: String) -> Double? {
                        guard let v = fm.value(key) else { return nil }
                        guard let s = v.scalar, let x = Double(s), (0...1).contains(x) else {
                            context.error(v, fm.child(key), "expected a share from 0 to 1, got \(describe(v))")
                            return nil
                        }
                        return x
                    }
                    f.drop = share("drop") ?? 0
                    f.corrupt = share("corrupt") ?? 0
                    if let v = fm.value("delay") { f.delaySeconds = duration(v, fm.child("delay"), context, allowZero: true) ?? 0 }
                    f.busOff = fm.bool("busOff") ?? false
                    fm.finish()
                    canFaults = f
                }
                let uart = d.int("uart", in: 0...63)
                if let uart, uart >= profile.uarts.count {
                    context.error(d.value("uart"), d.child("uart"), "\(profile.name) has \(profile.uarts.count) UARTs; valid: 0 to \(profile.uarts.count - 1)")
                } else if uart == nil, profile.canUART == nil {
                    context.error(typeNode, d.child("type"), "\(profile.name) has no UART to spare for CAN (SLCAN); set uart: N")
                }
                kind = .can(bus: bus, uart: uart)
            case "gdb":
                kind = .gdb
            default:
                context.error(typeNode, d.child("type"), "unknown device type \"\(type)\"; " + Suggestion.hint(type, in: ["serial", "socket", "can", "gdb"]))
                continue
            }
            guard let name, let nameNode else { continue }
            if devices.contains(where: { $0.name == name }) {
                context.error(nameNode, d.child("name"), "device \"\(name)\" is defined twice")
                continue
            }
            if kind == .gdb, devices.contains(where: { $0.kind == .gdb }) {
                context.error(typeNode, d.child("type"), "only one gdb device is allowed")
                continue
            }
            devices.append(Device(name: name, kind: kind, location: node.location, path: path, rfc2217Port: rfc2217, canFaults: canFaults))
        }
        return devices
    }
}
