import MachineCatalog
import ResourceKit
import YAMLTree

/// Decoded VM kinds of one apply → `VMDefinition`s: instancetype and
/// preference applied as KubeVirt applies them, a Viti class under its
/// Machine's overrides, disks joined with volumes, and the machine checked
/// against its architecture. Problems go to the `DecodeContext` with the
/// position of the field at fault.
public struct VMResolver {
    /// Below this no kernel KubeVirt boots gets to its init.
    public static let minimumMemory: UInt64 = 64 << 20
    public static let maximumMemory: UInt64 = Quantity.maxBytes

    /// The seed's instance types. A MachineClass of the same name replaces one.
    public static let builtInClasses: [VitiMachineClass] = [
        ("small", 1, 1, 1, UInt64(1) << 30), ("medium", 2, 2, 1, UInt64(2) << 30), ("large", 4, 2, 2, UInt64(4) << 30),
    ].map { name, cores, sockets, threads, memory in
        VitiMachineClass(metadata: ObjectMeta(name: name, namespace: "", labels: [:], location: SourceLocation(file: "<built-in>", line: 0, column: 0)),
                         cores: cores, sockets: sockets, threads: threads, memoryBytes: memory)
    }

    let instancetypes: [VMInstancetype]
    let preferences: [VMPreference]
    let classes: [String: VitiMachineClass]

    public init(instancetypes: [VMInstancetype], preferences: [VMPreference], classes: [VitiMachineClass]) {
        self.instancetypes = instancetypes
        self.preferences = preferences
        var byName: [String: VitiMachineClass] = [:]
        for c in Self.builtInClasses + classes { byName[c.metadata.name] = c }
        self.classes = byName
    }

    // MARK: KubeVirt

    public func resolve(_ vm: KubeVirtVirtualMachine, _ context: DecodeContext) -> VMDefinition? {
        let it = vm.instancetype.flatMap { r in
            lookup(r, namespace: vm.metadata.namespace, in: instancetypes, kind: r.cluster ? "VirtualMachineClusterInstancetype" : "VirtualMachineInstancetype",
                   isCluster: \.cluster, meta: \.metadata, context)
        }
        let pref = vm.preference.flatMap { r in
            lookup(r, namespace: vm.metadata.namespace, in: preferences, kind: r.cluster ? "VirtualMachineClusterPreference" : "VirtualMachinePreference",
                   isCluster: \.cluster, meta: \.metadata, context)
        }
        if (vm.instancetype != nil && it == nil) || (vm.preference != nil && pref == nil) { return nil }
        return resolve(vm.metadata, .kubevirtVirtualMachine, vm.runStrategy, vm.template, it, pref, context)
    }

    public func resolve(_ vmi: KubeVirtVirtualMachineInstance, _ context: DecodeContext) -> VMDefinition? {
        resolve(vmi.metadata, .kubevirtVirtualMachineInstance, .Once, vmi.spec, nil, nil, context)
    }

    func lookup<T>(_ ref: VMTypeReference, namespace: String, in all: [T], kind: String, isCluster: KeyPath<T, Bool>,
                   meta: KeyPath<T, ObjectMeta>, _ context: DecodeContext) -> T? {
        let candidates = all.filter { $0[keyPath: isCluster] == ref.cluster && (ref.cluster || $0[keyPath: meta].namespace == namespace) }
        if let hit = candidates.first(where: { $0[keyPath: meta].name == ref.name }) { return hit }
        let known = candidates.map { $0[keyPath: meta].name }.sorted()
        var message = "unknown \(kind) \"\(ref.name)\"; "
        if known.isEmpty {
            message += "none is defined: apply one with the VM (-f both files)"
        } else {
            if let n = Suggestion.nearest(ref.name, in: known) { message += "did you mean \"\(n)\"? " }
            message += "known: " + known.joined(separator: ", ")
        }
        context.error(at: ref.location, ref.path, message)
        return nil
    }

    func resolve(_ meta: ObjectMeta, _ api: VMDefinition.API, _ strategy: RunStrategy, _ s: VMInstanceSpec,
                 _ it: VMInstancetype?, _ pref: VMPreference?, _ context: DecodeContext) -> VMDefinition? {
        let errors = context.diagnostics.filter { $0.severity == .error }.count
        let domain = s.path + ".domain"
        let arch = s.architecture?.value ?? pref?.architecture ?? .amd64
        let machineType = checkMachineType(s.machineType ?? pref?.machineType.map { Located($0, at: pref?.location, path: "spec.machine.preferredMachineType") },
                                           arch, context)
        // Firmware: bios (SeaBIOS) on amd64, EFI on arm64, where virt has no BIOS.
        var firmware = s.bootloader?.value ?? pref?.firmware ?? (arch == .arm64 ? .efi(secureBoot: false) : .bios)
        if arch == .arm64, firmware == .bios {
            context.error(at: s.bootloader?.location ?? pref?.location, s.bootloader?.path ?? domain + ".firmware.bootloader.bios",
                          "arm64's virt machine has no BIOS; use efi (AAVMF)")
            firmware = .efi(secureBoot: false)
        }

        // CPU and memory: an instancetype sets both, and a VM that sets either too conflicts (as in KubeVirt),
        // unless it says the same thing.
        var cpu = CPUTopology(sockets: s.sockets?.value ?? 1, cores: s.cores?.value ?? 1, threads: s.threads?.value ?? 1, model: s.cpuModel?.value)
        var memory: Located<UInt64>?
        if let it {
            let topo = topology(it.guestCPUs, pref, it, context)
            let conflict = "conflicts with the \(it.kind) \"\(it.metadata.name)\", which sets it; remove it from the VM"
            for (field, value) in [(s.sockets, topo.sockets), (s.cores, topo.cores), (s.threads, topo.threads)] {
                if let field, field.value != value { context.error(at: field.location, field.path, conflict + " (it gives \(value))") }
            }
            if let m = s.cpuModel, let im = it.cpuModel, m.value != im { context.error(at: m.location, m.path, conflict) }
            if let r = s.cpuResources { context.error(at: r.location, r.path, conflict) }
            if let g = s.memoryGuest, g.value != it.memoryBytes { context.error(at: g.location, g.path, conflict + " (it gives \(Quantity.format(it.memoryBytes)))") }
            for r in [s.memoryRequest, s.memoryLimit].compactMap({ $0 }) { context.error(at: r.location, r.path, conflict) }
            cpu = CPUTopology(sockets: topo.sockets, cores: topo.cores, threads: topo.threads, model: it.cpuModel ?? s.cpuModel?.value)
            memory = Located(it.memoryBytes, at: it.metadata.location, path: "spec.memory.guest")
        } else {
            memory = s.memoryGuest ?? s.memoryRequest ?? s.memoryLimit
            if let g = s.memoryGuest, let l = s.memoryLimit, g.value > l.value {
                context.error(at: g.location, g.path, "\(Quantity.format(g.value)) is above resources.limits.memory (\(Quantity.format(l.value)))")
            }
        }
        guard let memory else {
            context.error(at: s.location, domain + ".memory.guest", "a VM needs memory: give domain.memory.guest or domain.resources.requests.memory, or an instancetype")
            return nil
        }
        checkMemory(memory, context)
        if let pref {
            if let need = pref.requiredCPUs, cpu.vcpus < need {
                context.error(at: it?.metadata.location ?? s.cores?.location ?? s.location, it == nil ? domain + ".cpu" : "spec.cpu.guest",
                              "\(cpu.vcpus) vCPUs are fewer than the \(pref.kind) \"\(pref.metadata.name)\" requires (\(need))")
            }
            if let need = pref.requiredMemoryBytes, memory.value < need {
                context.error(at: memory.location, memory.path,
                              "\(Quantity.format(memory.value)) is less than the \(pref.kind) \"\(pref.metadata.name)\" requires (\(Quantity.format(need)))")
            }
        }

        let disks = joinDisks(s, arch, pref, context)
        let interfaces = joinInterfaces(s, pref, context)
        guard context.diagnostics.filter({ $0.severity == .error }).count == errors, let machineType else { return nil }
        var d = VMDefinition(metadata: meta, api: api, runStrategy: strategy, architecture: arch, machineType: machineType, cpu: cpu,
                             memoryBytes: memory.value, firmware: firmware, kernelBoot: s.kernelBoot, disks: disks, interfaces: interfaces,
                             rng: s.rng ?? pref?.rng ?? false,
                             serialConsole: s.autoattachSerialConsole ?? pref?.autoattachSerialConsole ?? true,
                             graphics: s.autoattachGraphicsDevice ?? pref?.autoattachGraphicsDevice ?? true,
                             hostname: s.hostname ?? meta.name)
        d.terminationGracePeriodSeconds = s.terminationGracePeriodSeconds ?? pref?.terminationGracePeriodSeconds
        d.memoryLocation = memory.location
        d.memoryField = memory.path
        return d
    }

    /// vCPUs laid out as the preference's `preferredCPUTopology` says (sockets by default), as KubeVirt does.
    func topology(_ vcpus: Int, _ pref: VMPreference?, _ it: VMInstancetype, _ context: DecodeContext) -> (sockets: Int, cores: Int, threads: Int) {
        switch pref?.cpuTopology ?? .sockets {
        case .cores: return (1, vcpus, 1)
        case .threads: return (1, 1, vcpus)
        case .sockets, .any: return (vcpus, 1, 1)
        case .spread:
            let ratio = pref?.spreadRatio ?? 2
            guard vcpus % ratio == 0 else {
                context.error(at: it.metadata.location, "spec.cpu.guest", "\(vcpus) vCPUs do not spread evenly at \(ratio) cores per socket (the \(pref!.kind) \"\(pref!.metadata.name)\")")
                return (vcpus, 1, 1)
            }
            return (vcpus / ratio, ratio, 1)
        }
    }

    /// `q35` and `pc` (or their versioned names) on amd64, `virt` on arm64.
    func checkMachineType(_ written: Located<String>?, _ arch: Architecture, _ context: DecodeContext) -> String? {
        guard let written else { return arch == .arm64 ? "virt" : "q35" }
        let t = written.value
        let amd64 = t == "q35" || t == "pc" || t.hasPrefix("pc-q35-") || t.hasPrefix("pc-i440fx-")
        let arm64 = t == "virt" || t.hasPrefix("virt-")
        if (arch == .amd64 && amd64) || (arch == .arm64 && arm64) { return t }
        if amd64 || arm64 {
            context.error(at: written.location, written.path, "machine type \"\(t)\" is not for \(arch.rawValue); valid on \(arch.rawValue): " + (arch == .arm64 ? "virt" : "q35, pc"))
        } else {
            context.error(at: written.location, written.path, "unknown machine type \"\(t)\"; valid: q35, pc (amd64), virt (arm64), or a versioned name such as pc-q35-8.2")
        }
        return nil
    }

    func checkMemory(_ memory: Located<UInt64>, _ context: DecodeContext) {
        if memory.value < Self.minimumMemory {
            context.error(at: memory.location, memory.path, "\(Quantity.format(memory.value)) is below the minimum of \(Quantity.format(Self.minimumMemory)) a guest needs")
        } else if memory.value > Self.maximumMemory {
            context.error(at: memory.location, memory.path, "\(Quantity.format(memory.value)) is above the maximum of \(Quantity.format(Self.maximumMemory))")
        }
    }

    /// Disks joined with volumes by name. A volume without a disk gets a
    /// default disk, as KubeVirt's `SetDefaultVolumeDisk` does (vmi-sata.yaml
    /// relies on it); a disk without a volume is an error.
    func joinDisks(_ s: VMInstanceSpec, _ arch: Architecture, _ pref: VMPreference?, _ context: DecodeContext) -> [VMDisk] {
        var volumes: [String: VMVolumeSpec] = [:]
        for v in s.volumes {
            if volumes[v.name] != nil { context.error(at: v.location, v.path + ".name", "a second volume named \"\(v.name)\"") }
            volumes[v.name] = v
        }
        var specs = s.disks
        var seen = Set<String>()
        for d in specs where !seen.insert(d.name).inserted {
            context.error(at: d.location, d.path + ".name", "a second disk named \"\(d.name)\"")
        }
        for v in s.volumes where !seen.contains(v.name) {
            seen.insert(v.name)
            specs.append(VMDiskSpec(name: v.name, kind: .disk, bus: nil, bootOrder: nil, serial: nil, readonly: false, location: v.location, path: v.path))
        }
        var boot: [Int: VMDiskSpec] = [:]
        var out: [VMDisk] = []
        for d in specs {
            if let b = d.bootOrder {
                if let first = boot[b.value] {
                    context.error(at: b.location, b.path, "bootOrder \(b.value) is also disk \"\(first.name)\"'s; each disk needs its own")
                } else {
                    boot[b.value] = d
                }
            }
            guard let v = volumes[d.name] else {
                context.error(at: d.location, d.path + ".name", "disk \"\(d.name)\" has no volume of that name; " +
                              (volumes.isEmpty ? "add one under volumes" : Suggestion.hint(d.name, in: volumes.keys.sorted())))
                continue
            }
            let bus: VMDisk.Bus
            switch d.kind {
            case .disk: bus = d.bus ?? pref?.diskBus ?? .virtio
            case .cdrom: bus = d.bus ?? pref?.cdromBus ?? (arch == .arm64 ? .scsi : .sata)
            case .lun: bus = d.bus ?? pref?.lunBus ?? .scsi
            }
            if d.kind == .cdrom && bus == .virtio {
                context.error(at: d.location, d.path + ".cdrom.bus", "a cdrom cannot be on virtio (as in KubeVirt); valid: sata, scsi, usb")
            }
            if d.kind == .lun && bus != .scsi {
                context.error(at: d.location, d.path + ".lun.bus", "a lun is a SCSI device; valid: scsi")
            }
            if arch == .arm64 && bus == .sata {
                context.error(at: d.location, d.path + "." + d.kind.rawValue + ".bus", "arm64's virt machine has no SATA controller; use virtio or scsi")
            }
            out.append(VMDisk(name: d.name, kind: d.kind, bus: bus, bootOrder: d.bootOrder?.value, serial: d.serial,
                              readonly: d.readonly || v.readonly, source: v.source, volumeLabel: v.volumeLabel, optional: v.optional,
                              location: d.location, owner: v.owner))
        }
        return out
    }

    /// Interfaces joined with networks by name; none of either is KubeVirt's
    /// default: one masquerade interface `default` on the pod network.
    func joinInterfaces(_ s: VMInstanceSpec, _ pref: VMPreference?, _ context: DecodeContext) -> [VMInterface] {
        if s.interfaces.isEmpty && s.networks.isEmpty {
            guard s.autoattachPodInterface ?? pref?.autoattachPodInterface ?? true else { return [] }
            return [VMInterface(name: "default", binding: .masquerade, model: pref?.interfaceModel ?? "virtio")]
        }
        var networks: [String: VMNetworkSpec] = [:]
        var pods = 0
        for n in s.networks {
            if networks[n.name] != nil { context.error(at: n.location, n.path + ".name", "a second network named \"\(n.name)\"") }
            networks[n.name] = n
            if n.multus == nil {
                pods += 1
                if pods > 1 { context.error(at: n.location, n.path + ".pod", "only one network can be the pod network") }
            }
        }
        var seen = Set<String>()
        var out: [VMInterface] = []
        for i in s.interfaces {
            if !seen.insert(i.name).inserted { context.error(at: i.location, i.path + ".name", "a second interface named \"\(i.name)\"") }
            guard let n = networks[i.name] else {
                context.error(at: i.location, i.path + ".name", "interface \"\(i.name)\" has no network of that name; " +
                              (networks.isEmpty ? "add one under networks (pod: {})" : Suggestion.hint(i.name, in: networks.keys.sorted())))
                continue
            }
            out.append(VMInterface(name: i.name, binding: i.binding, model: i.model ?? pref?.interfaceModel ?? "virtio", macAddress: i.macAddress,
                                   ports: i.ports, network: n.multus))
        }
        for n in s.networks where !seen.contains(n.name) {
            context.error(at: n.location, n.path + ".name", "network \"\(n.name)\" has no interface of that name under domain.devices.interfaces")
        }
        return out
    }
}
