#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MachineCatalog
import ResourceKit
import YAMLTree

/// A VirtualMachineInstance spec: `domain`, `volumes`, `networks` and the
/// few top-level fields a single machine can honour.
extension VMDecoder {
    func decodeInstanceSpec(_ spec: MappingReader) -> VMInstanceSpec {
        defer { spec.finish() }
        let context = spec.context
        var s = VMInstanceSpec(path: spec.path, location: spec.node.location)
        if let v = spec.value("architecture") {
            s.architecture = enumValue(v, spec.child("architecture"), Architecture.self, context).map { Located($0, at: v.location, path: spec.child("architecture")) }
        }
        if let v = spec.value("hostname"), let h = MappingReader.string(v, spec.child("hostname"), context) {
            if Names.isDNSLabel(h) { s.hostname = h } else {
                context.error(v, spec.child("hostname"), "\"\(h)\" is not a valid hostname: use at most 63 characters of lower-case letters, digits and '-' (a DNS-1123 label)")
            }
        }
        s.terminationGracePeriodSeconds = spec.int("terminationGracePeriodSeconds", in: 0...86400)
        if let v = spec.value("evictionStrategy"), let e = MappingReader.string(v, spec.child("evictionStrategy"), context), e != "None" {
            let message = "evictionStrategy \"\(e)\" needs a cluster (eviction moves the VM to another node); use \"None\" or remove it"
            if context.strict { context.error(v, spec.child("evictionStrategy"), message) } else { context.warning(v, spec.child("evictionStrategy"), message) }
        }
        refuse(spec, ["nodeSelector", "affinity", "tolerations", "topologySpreadConstraints", "schedulerName", "priorityClassName"], Self.scheduling)
        refuse(spec, ["serviceAccountName", "subdomain", "dnsPolicy", "dnsConfig", "resourceClaims"], .cluster("it configures the pod and its cluster DNS"))
        refuse(spec, ["livenessProbe", "readinessProbe"], .notYet("probes come with the VM driver"))
        refuse(spec, ["accessCredentials"], .notYet("give SSH keys through cloud-init user data"))
        refuse(spec, ["startStrategy"], .notYet("use `vtarget start --paused`"))
        refuse(spec, ["utilityVolumes"], .cluster("utility volumes are hot-plugged by the cluster"))
        if let domain = spec.mapping("domain", required: true) {
            decodeDomain(domain, &s)
        }
        for (node, path) in spec.sequence("volumes") ?? [] {
            guard let m = MappingReader(node, path: path, context: context) else { continue }
            if let v = decodeVolume(m) { s.volumes.append(v) }
            m.finish()
        }
        for (node, path) in spec.sequence("networks") ?? [] {
            guard let m = MappingReader(node, path: path, context: context) else { continue }
            defer { m.finish() }
            let name = self.name(m)
            var multus: String?
            let pod = m.has("pod")
            if let p = m.mapping("pod") {
                refuse(p, ["vmNetworkCIDR", "vmIPv6NetworkCIDR"], .notYet("QEMU's user network picks its own addresses"))
                p.finish()
            }
            if let mm = m.mapping("multus") {
                multus = mm.string("networkName", required: true)
                if let d = mm.value("default"), mm.bool("default") == true {
                    let message = "a default multus network needs a cluster (it replaces the pod network with a cluster's)"
                    if context.strict { context.error(d, mm.child("default"), message) } else { context.warning(d, mm.child("default"), message) }
                }
                mm.finish()
            }
            refuse(m, ["resourceClaim"], .cluster("dynamic resource allocation"))
            if pod == (multus != nil) {
                context.error(node, path, "a network has exactly one of pod or multus")
            }
            if let name { s.networks.append(VMNetworkSpec(name: name, multus: multus, location: node.location, path: path)) }
        }
        return s
    }

    func decodeDomain(_ domain: MappingReader, _ s: inout VMInstanceSpec) {
        defer { domain.finish() }
        let context = domain.context
        if let r = domain.mapping("resources") {
            for key in ["requests", "limits"] {
                guard let q = r.mapping(key) else { continue }
                for (k, v) in q.allPairs() {
                    let path = q.child(k)
                    switch k {
                    case "memory":
                        guard let b = bytes(v, path, context) else { continue }
                        if key == "requests" { s.memoryRequest = Located(b, at: v.location, path: path) } else { s.memoryLimit = Located(b, at: v.location, path: path) }
                    case "cpu":
                        // The pod's CPU share, not vCPUs: only an instancetype conflicts with it.
                        if s.cpuResources == nil { s.cpuResources = Located(v.scalar ?? "", at: v.location, path: path) }
                    default:
                        let message = "resource \"\(k)\" needs a cluster (a device plugin or node resource); valid here: memory, cpu"
                        if context.strict { context.error(v, path, message) } else { context.warning(v, path, message) }
                    }
                }
                q.finish()
            }
            refuse(r, ["overcommitGuestOverhead"], .cluster("it sizes the pod's memory request"))
            r.finish()
        }
        if let cpu = domain.mapping("cpu") {
            s.cores = locatedInt(cpu, "cores", in: 1...256)
            s.sockets = locatedInt(cpu, "sockets", in: 1...256)
            s.threads = locatedInt(cpu, "threads", in: 1...256)
            if let v = cpu.value("model"), let model = MappingReader.string(v, cpu.child("model"), context) {
                s.cpuModel = Located(model, at: v.location, path: cpu.child("model"))
            }
            refuse(cpu, ["dedicatedCpuPlacement", "isolateEmulatorThread", "numa", "realtime"], .cluster("it pins host CPUs through the node's CPU manager"))
            refuse(cpu, ["features"], .notYet("CPU feature flags; choose a model instead"))
            refuse(cpu, ["maxSockets"], .notYet("CPU hotplug"))
            cpu.finish()
        }
        if let mem = domain.mapping("memory") {
            s.memoryGuest = locatedBytes(mem, "guest")
            refuse(mem, ["hugepages", "reservedOverhead"], .cluster("it is the node's memory configuration"))
            refuse(mem, ["maxGuest"], .notYet("memory hotplug"))
            mem.finish()
        }
        if let machine = domain.mapping("machine") {
            if let v = machine.value("type"), let t = MappingReader.string(v, machine.child("type"), context) {
                s.machineType = Located(t, at: v.location, path: machine.child("type"))
            }
            machine.finish()
        }
        if let fw = domain.mapping("firmware") {
            decodeFirmware(fw, &s)
        }
        if let features = domain.mapping("features") {
            // ACPI is on unless said otherwise; QEMU's q35/pc/virt have it.
            if let acpi = features.mapping("acpi") {
                if acpi.bool("enabled") == false {
                    context.error(acpi.value("enabled"), acpi.child("enabled"), "a VM without ACPI is not supported by vtarget; remove it")
                }
                acpi.finish()
            }
            refuse(features, ["apic", "hyperv", "hypervPassthrough", "kvm", "pvspinlock", "smm"], .notYet("hypervisor feature tuning"))
            features.finish()
        }
        refuse(domain, ["clock"], .notYet("the guest clock is the host's UTC"))
        refuse(domain, ["ioThreadsPolicy", "ioThreads", "chassis", "rebootPolicy"], .notYet("libvirt domain tuning"))
        refuse(domain, ["launchSecurity"], .cluster("confidential computing needs a node with SEV or TDX"))
        if let devices = domain.mapping("devices") {
            decodeDevices(devices, &s)
        }
    }

    func decodeFirmware(_ fw: MappingReader, _ s: inout VMInstanceSpec) {
        defer { fw.finish() }
        let context = fw.context
        if let bl = fw.mapping("bootloader") {
            defer { bl.finish() }
            let hasBIOS = bl.has("bios"), hasEFI = bl.has("efi")
            if hasBIOS && hasEFI { context.error(bl.node, bl.path, "give bios or efi, not both") }
            if let bios = bl.mapping("bios") {
                refuse(bios, ["useSerial"], .notYet("SeaBIOS output on the serial console"))
                bios.finish()
                s.bootloader = Located(.bios, at: bl.node.location, path: bl.child("bios"))
            } else if hasBIOS {
                _ = bl.value("bios")
                s.bootloader = Located(.bios, at: bl.node.location, path: bl.child("bios"))
            }
            if let efi = bl.mapping("efi") {
                if let v = efi.value("secureBoot"), efi.bool("secureBoot") == true {
                    context.error(v, efi.child("secureBoot"), "secure boot is not supported by vtarget: it needs OVMF's secure-boot build with enrolled keys and SMM, which vtarget does not set up; use secureBoot: false")
                }
                refuse(efi, ["persistent"], .notYet("the EFI variables are kept per VM already"))
                efi.finish()
                s.bootloader = Located(.efi(secureBoot: false), at: efi.node.location, path: bl.child("efi"))
            } else if hasEFI {
                _ = bl.value("efi")
                s.bootloader = Located(.efi(secureBoot: false), at: bl.node.location, path: bl.child("efi"))
            }
        }
        if let kb = fw.mapping("kernelBoot") {
            defer { kb.finish() }
            let args = kb.string("kernelArgs")
            if let c = kb.mapping("container") {
                defer { c.finish() }
                let image = c.string("image", required: true)
                let kernel = c.string("kernelPath"), initrd = c.string("initrdPath")
                _ = c.value("imagePullPolicy")
                refuse(c, ["imagePullSecret"], .cluster("pull secrets are Kubernetes Secrets of a registry; use `vtarget image pull`"))
                for (value, key) in [(kernel, "kernelPath"), (initrd, "initrdPath")] {
                    if let value, !value.hasPrefix("/") { context.error(c.value(key), c.child(key), "\"\(value)\" must be an absolute path inside the image") }
                }
                if kernel == nil && initrd == nil {
                    context.error(c.node, c.path, "give kernelPath, initrdPath or both")
                }
                if let image { s.kernelBoot = KernelBoot(image: image, kernelPath: kernel, initrdPath: initrd, kernelArgs: args) }
            } else if args != nil {
                context.error(kb.value("kernelArgs"), kb.child("kernelArgs"), "kernelArgs needs a kernel: give kernelBoot.container")
            }
        }
        refuse(fw, ["uuid", "serial"], .notYet("SMBIOS values"))
        refuse(fw, ["acpi"], .notYet("extra ACPI tables"))
    }

    func decodeDevices(_ devices: MappingReader, _ s: inout VMInstanceSpec) {
        defer { devices.finish() }
        let context = devices.context
        s.rng = devices.has("rng") ? presence(devices, "rng") : nil
        s.autoattachSerialConsole = devices.bool("autoattachSerialConsole")
        s.autoattachGraphicsDevice = devices.bool("autoattachGraphicsDevice")
        s.autoattachPodInterface = devices.bool("autoattachPodInterface")
        refuse(devices, ["gpus", "hostDevices", "clientPassthrough", "downwardMetrics"], .cluster("it passes a node's devices or metrics through"))
        refuse(devices, ["useVirtioTransitional", "disableHotplug", "watchdog", "inputs", "autoattachMemBalloon", "autoattachInputDevice",
                         "autoattachVSOCK", "logSerialConsole", "blockMultiQueue", "networkInterfaceMultiqueue", "panicDevices",
                         "filesystems", "sound", "tpm", "video"], .notYet("this device"))
        for (node, path) in devices.sequence("disks") ?? [] {
            guard let m = MappingReader(node, path: path, context: context) else { continue }
            defer { m.finish() }
            let name = self.name(m)
            var kind = VMDisk.Kind.disk, bus: VMDisk.Bus?, readonly = false
            let kinds = VMDisk.Kind.allCases.filter { m.has($0.rawValue) }
            if kinds.count > 1 {
                context.error(node, path, "a disk is one of disk, cdrom or lun, not " + kinds.map(\.rawValue).joined(separator: " and "))
            }
            if let k = kinds.first {
                kind = k
                if let t = m.mapping(k.rawValue) {
                    if let v = t.value("bus") { bus = enumValue(v, t.child("bus"), VMDisk.Bus.self, context) }
                    readonly = t.bool("readonly") ?? (k == .cdrom)
                    refuse(t, ["pciAddress", "tray"], .notYet("device placement"))
                    refuse(t, ["reservation"], .cluster("SCSI persistent reservations need the node's pr-helper"))
                    t.finish()
                } else {
                    _ = m.value(k.rawValue)
                    readonly = k == .cdrom
                }
            }
            let bootOrder = locatedInt(m, "bootOrder", in: 1...1024)
            let serial = m.string("serial")
            // KubeVirt's characters; 20 is what a virtio-blk or ATA serial holds.
            if let serial, serial.isEmpty || serial.utf8.count > 20 || !serial.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E || $0 == 0x2B }) {
                context.error(m.value("serial"), m.child("serial"), "\"\(serial)\" is not a valid serial: use 1 to 20 letters, digits, '-', '_', '.' and '+'")
            }
            refuse(m, ["dedicatedIOThread", "cache", "io", "tag", "blockSize", "shareable", "errorPolicy", "changedBlockTracking"], .notYet("disk tuning"))
            if let name {
                s.disks.append(VMDiskSpec(name: name, kind: kind, bus: bus, bootOrder: bootOrder, serial: serial, readonly: readonly, location: node.location, path: path))
            }
        }
        for (node, path) in devices.sequence("interfaces") ?? [] {
            guard let m = MappingReader(node, path: path, context: context) else { continue }
            defer { m.finish() }
            let name = self.name(m)
            let bindings = VMInterface.Binding.allCases.filter { m.has($0.rawValue) }
            refuse(m, ["sriov"], .cluster("SR-IOV hands the VM a virtual function of a node's NIC"))
            refuse(m, ["slirp", "macvtap", "passt", "passtBinding", "binding"], .notYet("use masquerade"))
            if bindings.count > 1 { context.error(node, path, "an interface has one binding, not " + bindings.map(\.rawValue).joined(separator: " and ")) }
            for b in bindings { _ = presence(m, b.rawValue) }
            var model: String?
            if let v = m.value("model"), let s = MappingReader.string(v, m.child("model"), context) {
                if VMInterface.models.contains(s) { model = s } else {
                    context.error(v, m.child("model"), "\"\(s)\" is not valid; " + Suggestion.hint(s, in: VMInterface.models))
                }
            }
            var mac: String?
            if let v = m.value("macAddress"), let s = MappingReader.string(v, m.child("macAddress"), context) {
                if VMInterface.isMAC(s) { mac = s.lowercased() } else {
                    context.error(v, m.child("macAddress"), "\"\(s)\" is not a MAC address: write six hex pairs such as 02:00:00:00:00:01")
                }
            }
            var ports: [VMInterface.Port] = []
            for (pn, pp) in m.sequence("ports") ?? [] {
                guard let p = MappingReader(pn, path: pp, context: context) else { continue }
                defer { p.finish() }
                let pname = p.string("name")
                var proto = VMInterface.Port.TransportProtocol.TCP
                if let v = p.value("protocol") { proto = enumValue(v, p.child("protocol"), VMInterface.Port.TransportProtocol.self, context) ?? proto }
                guard p.required("port") != nil, let port = p.int("port", in: 1...65535) else { continue }
                ports.append(VMInterface.Port(name: pname, port: port, transport: proto))
            }
            refuse(m, ["bootOrder", "pciAddress", "dhcpOptions", "tag", "acpiIndex", "state", "portRanges"], .notYet("interface tuning"))
            if !ports.isEmpty && bindings.first == .bridge {
                context.error(m.value("ports"), m.child("ports"), "ports are forwarded by masquerade only, as KubeVirt has it")
            }
            if let name {
                s.interfaces.append(VMInterfaceSpec(name: name, binding: bindings.first ?? .masquerade, model: model, macAddress: mac,
                                                    ports: ports, location: node.location, path: path))
            }
        }
    }

    // MARK: Volumes

    static let volumeSources = ["containerDisk", "cloudInitNoCloud", "cloudInitConfigDrive", "emptyDisk", "hostDisk",
                                "persistentVolumeClaim", "dataVolume", "configMap", "secret"]

    func decodeVolume(_ m: MappingReader) -> VMVolumeSpec? {
        let context = m.context
        let name = self.name(m)
        refuse(m, ["serviceAccount", "downwardAPI", "downwardMetrics", "memoryDump", "containerPath"], .cluster("it is filled from the cluster's API"))
        refuse(m, ["sysprep", "ephemeral"], .notYet("this volume type"))
        let present = Self.volumeSources.filter { m.has($0) }
        guard present.count == 1, let kind = present.first else {
            for k in present { _ = m.value(k) }
            context.error(m.node, m.path, present.isEmpty
                ? "a volume needs one source; valid: " + Self.volumeSources.joined(separator: ", ")
                : "a volume has one source, not " + present.joined(separator: " and "))
            return nil
        }
        guard let src = m.mapping(kind) else {
            if !m.has(kind) || m.value(kind) == nil { context.error(m.node, m.child(kind), "expected a mapping") }
            return nil
        }
        defer { src.finish() }
        var readonly = false
        let source: VMDisk.Source?
        switch kind {
        case "containerDisk":
            let image = src.string("image", required: true)
            let path = src.string("path")
            if let path, !path.hasPrefix("/") { context.error(src.value("path"), src.child("path"), "\"\(path)\" must be an absolute path inside the image") }
            _ = src.value("imagePullPolicy")
            refuse(src, ["imagePullSecret"], .cluster("pull secrets are Kubernetes Secrets of a registry; use `vtarget image pull`"))
            source = image.map { .image(reference: $0, path: path) }
        case "cloudInitNoCloud", "cloudInitConfigDrive":
            source = decodeCloudInit(src, flavor: kind == "cloudInitNoCloud" ? .noCloud : .configDrive).map { .cloudInit($0) }
        case "emptyDisk":
            source = src.required("capacity").flatMap { bytes($0, src.child("capacity"), context) }.map { .empty(capacityBytes: $0) }
        case "hostDisk":
            let path = src.string("path", required: true)
            var create = false
            if let v = src.required("type"), let t = MappingReader.string(v, src.child("type"), context) {
                switch t {
                case "Disk": create = false
                case "DiskOrCreate": create = true
                default: context.error(v, src.child("type"), "\"\(t)\" is not valid; valid: \"Disk\", \"DiskOrCreate\"")
                }
            }
            let capacity = src.value("capacity").flatMap { bytes($0, src.child("capacity"), context) }
            if create && capacity == nil && src.value("capacity") == nil {
                context.error(src.node, src.child("capacity"), "DiskOrCreate needs a capacity for the file it creates")
            }
            refuse(src, ["shared"], .cluster("a disk shared between nodes"))
            if let path, !path.hasPrefix("/") { context.error(src.value("path"), src.child("path"), "\"\(path)\" must be an absolute path") }
            if !options.allowHostPaths {
                context.error(m.value(kind), m.child(kind), "hostDisk reads and writes a file of this host; allow it with --allow-host-paths")
            }
            source = path.map { .hostDisk(path: $0, create: create, capacityBytes: capacity) }
        case "persistentVolumeClaim":
            let claim = src.string("claimName", required: true)
            readonly = src.bool("readOnly") ?? false
            refuse(src, ["hotpluggable"], .notYet("hot-plugged volumes"))
            if let claim, !Names.isDNSLabel(claim) { context.error(src.value("claimName"), src.child("claimName"), "\"\(claim)\" is not a valid name (a DNS-1123 label)") }
            source = claim.map { .volume(name: $0, capacityBytes: nil, storageClass: nil) }
        case "dataVolume":
            let dv = src.string("name", required: true)
            refuse(src, ["hotpluggable"], .notYet("hot-plugged volumes"))
            if let dv, !Names.isDNSLabel(dv) { context.error(src.value("name"), src.child("name"), "\"\(dv)\" is not a valid name (a DNS-1123 label)") }
            source = dv.map { .volume(name: $0, capacityBytes: nil, storageClass: nil) }
        case "configMap":
            let map = src.string("name", required: true)
            source = map.map { .configMap(name: $0) }
        default:  // secret
            let secret = src.string("secretName", required: true)
            source = secret.map { .secret(name: $0) }
        }
        var volumeLabel: String?, optional = false
        if kind == "configMap" || kind == "secret" {
            // KubeVirt's config volumes are not Kubernetes pod volumes: they have
            // no `items` or `defaultMode`, every key becomes a file of the disk.
            for key in ["items", "defaultMode"] {
                guard let v = src.value(key) else { continue }
                context.error(v, src.child(key), "\"\(key)\" belongs to a Kubernetes pod's \(kind) volume; KubeVirt's has none "
                    + "(every key becomes a file on the disk); valid: \(kind == "secret" ? "secretName" : "name"), optional, volumeLabel")
            }
            optional = src.bool("optional") ?? false
            volumeLabel = decodeVolumeLabel(src)
        }
        guard let name, let source else { return nil }
        return VMVolumeSpec(name: name, source: source, readonly: readonly, volumeLabel: volumeLabel, optional: optional,
                            location: m.node.location, path: m.path)
    }

    /// `volumeLabel`: the ISO 9660 volume identifier the guest mounts by
    /// (e.g. `cidata`, `config-2`, `OEMDRV`), 1 to 32 characters, none of
    /// them a space, slash or control character (udev's by-label name).
    func decodeVolumeLabel(_ src: MappingReader) -> String? {
        guard let label = src.string("volumeLabel") else { return nil }
        let bad = label.unicodeScalars.first { $0.value < 0x21 || $0.value > 0x7E || $0 == "/" }
        if label.isEmpty || label.utf8.count > 32 || bad != nil {
            src.context.error(src.value("volumeLabel"), src.child("volumeLabel"),
                "\"\(label)\" is not a volume label: give 1 to 32 printable ASCII characters without spaces or \"/\" (e.g. cidata, config-2, OEMDRV)")
            return nil
        }
        return label
    }

    /// `userData` | `userDataBase64` | `secretRef`, and the same for network data.
    func decodeCloudInit(_ m: MappingReader, flavor: CloudInit.Flavor) -> CloudInit? {
        let context = m.context
        func text(_ plain: String, _ base64: String, _ secret: String) -> (String?, String?, Bool) {
            let given = [plain, base64, secret].filter { m.has($0) }
            if given.count > 1 {
                for k in given { _ = m.value(k) }
                context.error(m.value(given[1]), m.child(given[1]), "give one of \(plain), \(base64) or \(secret), not " + given.joined(separator: " and "))
                return (nil, nil, true)
            }
            if let t = m.string(plain) { return (t, nil, true) }
            if let v = m.value(base64), let b = MappingReader.string(v, m.child(base64), context) {
                guard let bytes = Base64Value.decode(b), let t = String(validating: bytes, as: UTF8.self) else {
                    context.error(v, m.child(base64), "not valid base64 of UTF-8 text")
                    return (nil, nil, true)
                }
                return (t, nil, true)
            }
            if let r = m.mapping(secret) {
                defer { r.finish() }
                return (nil, r.string("name", required: true), true)
            }
            return (nil, nil, false)
        }
        let (user, userSecret, hasUser) = text("userData", "userDataBase64", "secretRef")
        let (network, networkSecret, hasNetwork) = text("networkData", "networkDataBase64", "networkDataSecretRef")
        if !hasUser && !hasNetwork {
            context.error(m.node, m.path, "cloud-init needs user data or network data: give userData, userDataBase64, secretRef, networkData, networkDataBase64 or networkDataSecretRef")
            return nil
        }
        return CloudInit(flavor: flavor, userData: user, userDataSecret: userSecret, networkData: network, networkDataSecret: networkSecret)
    }
}

extension VMInterface {
    /// NIC models QEMU has and KubeVirt accepts.
    public static let models = ["virtio", "e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139"]

    public static func isMAC(_ s: String) -> Bool {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && $0.allSatisfy(\.isHexDigit) }
    }
}
