import MachineCatalog
import ResourceKit
import YAMLTree

/// `instancetype.kubevirt.io/v1beta1`: instancetypes (size) and preferences
/// (defaults for what a VM leaves unset).
extension VMDecoder {
    public func decodeInstancetype(_ meta: ObjectMeta, _ spec: MappingReader, cluster: Bool) -> VMInstancetype? {
        defer { spec.finish() }
        _ = spec.value("annotations")
        refuse(spec, ["nodeSelector", "schedulerName"], Self.scheduling)
        refuse(spec, ["gpus", "hostDevices"], .cluster("it passes a node's devices through"))
        refuse(spec, ["ioThreadsPolicy", "ioThreads"], .notYet("libvirt domain tuning"))
        refuse(spec, ["launchSecurity"], .cluster("confidential computing needs a node with SEV or TDX"))
        var cpus: Int?, model: String?, memory: UInt64?
        if let cpu = spec.mapping("cpu", required: true) {
            if cpu.required("guest") != nil { cpus = cpu.int("guest", in: 1...1024) }
            model = cpu.string("model")
            refuse(cpu, ["dedicatedCPUPlacement", "isolateEmulatorThread", "numa", "realtime"], .cluster("it pins host CPUs through the node's CPU manager"))
            refuse(cpu, ["maxSockets"], .notYet("CPU hotplug"))
            cpu.finish()
        }
        if let mem = spec.mapping("memory", required: true) {
            memory = mem.required("guest").flatMap { bytes($0, mem.child("guest"), mem.context) }
            refuse(mem, ["hugepages", "overcommitPercent"], .cluster("it is the node's memory configuration"))
            refuse(mem, ["maxGuest"], .notYet("memory hotplug"))
            mem.finish()
        }
        guard let cpus, let memory else { return nil }
        return VMInstancetype(metadata: meta, cluster: cluster, guestCPUs: cpus, cpuModel: model, memoryBytes: memory)
    }

    public func decodePreference(_ meta: ObjectMeta, _ spec: MappingReader, cluster: Bool) -> VMPreference? {
        defer { spec.finish() }
        let context = spec.context
        var p = VMPreference(metadata: meta, cluster: cluster, location: spec.node.location)
        _ = spec.value("annotations")
        if let cpu = spec.mapping("cpu") {
            if let v = cpu.value("preferredCPUTopology"), let t = MappingReader.string(v, cpu.child("preferredCPUTopology"), context) {
                // The deprecated spellings (`preferCores`, ...) mean the same.
                let plain = t.hasPrefix("prefer") ? t.dropFirst("prefer".count).lowercased() : t
                if let topo = PreferredCPUTopology(rawValue: plain) { p.cpuTopology = topo } else {
                    context.error(v, cpu.child("preferredCPUTopology"), "\"\(t)\" is not valid; " + Suggestion.hint(t, in: PreferredCPUTopology.allCases.map(\.rawValue)))
                }
            }
            if let so = cpu.mapping("spreadOptions") {
                p.spreadRatio = so.int("ratio", in: 1...256)
                if let v = so.value("across"), let a = MappingReader.string(v, so.child("across"), context), a != "SocketsCores" {
                    context.error(v, so.child("across"), "\"\(a)\" is not supported by vtarget; valid: \"SocketsCores\"")
                }
                so.finish()
            }
            refuse(cpu, ["preferredCPUFeatures"], .notYet("CPU feature flags"))
            cpu.finish()
        }
        if let r = spec.value("preferSpreadSocketToCoreRatio") {
            p.spreadRatio = MappingReader.int(r, spec.child("preferSpreadSocketToCoreRatio"), context, in: 1...256) ?? p.spreadRatio
        }
        if let d = spec.mapping("devices") {
            for (key, assign) in [("preferredDiskBus", \VMPreference.diskBus), ("preferredCdromBus", \.cdromBus), ("preferredLunBus", \.lunBus)] as [(String, WritableKeyPath<VMPreference, VMDisk.Bus?>)] {
                if let v = d.value(key) { p[keyPath: assign] = enumValue(v, d.child(key), VMDisk.Bus.self, context) }
            }
            if let v = d.value("preferredInterfaceModel"), let s = MappingReader.string(v, d.child("preferredInterfaceModel"), context) {
                if VMInterface.models.contains(s) { p.interfaceModel = s } else {
                    context.error(v, d.child("preferredInterfaceModel"), "\"\(s)\" is not valid; " + Suggestion.hint(s, in: VMInterface.models))
                }
            }
            p.autoattachSerialConsole = d.bool("preferredAutoattachSerialConsole")
            p.autoattachGraphicsDevice = d.bool("preferredAutoattachGraphicsDevice")
            p.autoattachPodInterface = d.bool("preferredAutoattachPodInterface")
            if d.has("preferredRng") { p.rng = presence(d, "preferredRng") }
            refuse(d, ["preferredAutoattachMemBalloon", "preferredAutoattachInputDevice", "preferredDisableHotplug", "preferredVirtualGPUOptions",
                       "preferredSoundModel", "preferredUseVirtioTransitional", "preferredInputBus", "preferredInputType",
                       "preferredDiskDedicatedIoThread", "preferredDiskCache", "preferredDiskIO", "preferredDiskBlockSize",
                       "preferredBlockMultiQueue", "preferredNetworkInterfaceMultiQueue", "preferredTPM", "preferredInterfaceMasquerade",
                       "preferredPanicDeviceModel", "preferredVideoType"], .notYet("this device preference"))
            d.finish()
        }
        if let f = spec.mapping("firmware") {
            if f.bool("preferredUseBios") == true { p.firmware = .bios }
            if f.bool("preferredUseEfi") == true { p.firmware = .efi(secureBoot: false) }
            if let v = f.value("preferredUseSecureBoot"), f.bool("preferredUseSecureBoot") == true {
                context.error(v, f.child("preferredUseSecureBoot"), "secure boot is not supported by vtarget (no enrolled keys or SMM); remove it")
            }
            if let efi = f.mapping("preferredEfi") {
                if let v = efi.value("secureBoot"), efi.bool("secureBoot") == true {
                    context.error(v, efi.child("secureBoot"), "secure boot is not supported by vtarget (no enrolled keys or SMM); use secureBoot: false")
                }
                refuse(efi, ["persistent"], .notYet("the EFI variables are kept per VM already"))
                efi.finish()
                p.firmware = .efi(secureBoot: false)
            }
            refuse(f, ["preferredUseBiosSerial"], .notYet("SeaBIOS output on the serial console"))
            f.finish()
        }
        if let m = spec.mapping("machine") {
            p.machineType = m.string("preferredMachineType")
            m.finish()
        }
        if let v = spec.value("preferredArchitecture") {
            p.architecture = enumValue(v, spec.child("preferredArchitecture"), Architecture.self, context)
        }
        p.terminationGracePeriodSeconds = spec.int("preferredTerminationGracePeriodSeconds", in: 0...86400)
        if let r = spec.mapping("requirements") {
            if let c = r.mapping("cpu") { p.requiredCPUs = c.int("guest", in: 1...1024); c.finish() }
            if let m = r.mapping("memory") { p.requiredMemoryBytes = m.required("guest").flatMap { bytes($0, m.child("guest"), context) }; m.finish() }
            if let v = r.value("architecture") { p.architecture = enumValue(v, r.child("architecture"), Architecture.self, context) ?? p.architecture }
            r.finish()
        }
        refuse(spec, ["clock", "features"], .notYet("clock and hypervisor feature preferences"))
        refuse(spec, ["volumes", "preferredSubdomain"], .cluster("storage classes and DNS subdomains are the cluster's"))
        refuse(spec, ["preferredLaunchSecurity"], .cluster("confidential computing needs a node with SEV or TDX"))
        return p
    }
}
