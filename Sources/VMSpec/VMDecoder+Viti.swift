import MachineCatalog
import ResourceKit
import YAMLTree

/// `vitistack.io/v1alpha1` Machine (the seed's and upstream's spelling) and MachineClass.
extension VMDecoder {
    static let providerOnly = Refusal.cluster("a cloud provider's setting; locally vtarget is the provider")

    public func decodeMachine(_ meta: ObjectMeta, _ spec: MappingReader) -> VitiMachine? {
        defer { spec.finish() }
        let context = spec.context
        var m = VitiMachine(metadata: meta)
        let seedClass = spec.value("instanceType"), upstreamClass = spec.value("machineClass")
        if seedClass != nil && upstreamClass != nil {
            context.error(upstreamClass, spec.child("machineClass"), "give instanceType (the seed's name) or machineClass, not both")
        }
        for (v, key) in [(seedClass, "instanceType"), (upstreamClass, "machineClass")] {
            if let v, let s = MappingReader.string(v, spec.child(key), context) { m.className = Located(s, at: v.location, path: spec.child(key)) }
        }
        if let v = spec.value("name"), let n = MappingReader.string(v, spec.child("name"), context) {
            if Names.isDNSLabel(n) { m.vmName = n } else {
                context.error(v, spec.child("name"), "\"\(n)\" is not a valid hostname: use at most 63 characters of lower-case letters, digits and '-' (a DNS-1123 label)")
            }
        }
        if let cpu = spec.mapping("cpu") {
            m.cores = cpu.int("cores", in: 1...256)
            m.sockets = cpu.int("sockets", in: 1...16)
            m.threads = cpu.int("threadsPerCore", in: 1...8)
            cpu.finish()
        }
        m.memoryBytes = locatedBytes(spec, "memory")
        if let v = spec.value("machineType"), let t = MappingReader.string(v, spec.child("machineType"), context) {
            m.machineType = Located(t, at: v.location, path: spec.child("machineType"))
        }
        for (node, path) in spec.sequence("disks") ?? [] {
            guard let d = MappingReader(node, path: path, context: context) else { continue }
            defer { d.finish() }
            let name = self.name(d)
            let size = d.value("size"), sizeGB = d.value("sizeGB")
            var bytes: UInt64?
            if size != nil && sizeGB != nil {
                context.error(sizeGB, d.child("sizeGB"), "give size (the seed's quantity) or sizeGB, not both")
            } else if let size {
                bytes = self.bytes(size, d.child("size"), context)
            } else if sizeGB != nil, let gb = d.int("sizeGB", in: 1...65536) {
                bytes = UInt64(gb) << 30
            }
            let storageClass = d.string("storageClass"), type = d.string("type")
            if storageClass != nil && type != nil {
                context.error(d.value("type"), d.child("type"), "give storageClass or type, not both: both pick the volume's directory")
            }
            let boot = d.bool("boot") ?? false
            refuse(d, ["device", "encrypted", "iops", "throughput"], Self.providerOnly)
            if let name {
                m.disks.append(VitiDisk(name: name, sizeBytes: bytes, storageClass: storageClass ?? type, boot: boot, location: node.location, path: path))
            }
        }
        if m.disks.filter(\.boot).count > 1 {
            let second = m.disks.filter(\.boot)[1]
            context.error(at: second.location, second.path + ".boot", "only one disk can be the boot disk")
        }
        if let os = spec.mapping("os") {
            defer { os.finish() }
            _ = os.value("family")
            let image = os.string("imageID"), distribution = os.string("distribution"), version = os.string("version")
            _ = os.value("imageFamily")
            refuse(os, ["isoUri"], .notYet("installing from an ISO URI; import the ISO with `vtarget image import`"))
            if let v = os.value("architecture"), let a = MappingReader.string(v, os.child("architecture"), context) {
                switch a {
                case "amd64", "x86_64": m.architecture = .amd64
                case "arm64": m.architecture = .arm64
                default: context.error(v, os.child("architecture"), "\"\(a)\" is not valid; valid: \"amd64\", \"arm64\", \"x86_64\"")
                }
            }
            m.image = image ?? distribution.map { d in version.map { "\(d):\($0)" } ?? d }
        }
        m.sshKeys = spec.stringList("sshKeys") ?? []
        for key in ["userData", "cloudInit"] {
            if let v = spec.value(key), let s = MappingReader.string(v, spec.child(key), context) {
                let located = Located(s, at: v.location, path: spec.child(key))
                if key == "userData" { m.userData = located } else { m.cloudInit = located }
            }
        }
        // Which provider runs it is decided by applying it here.
        _ = spec.value("provider")
        _ = spec.value("tags")
        refuse(spec, ["providerConfig", "network", "securityGroups", "monitoring", "backup"], Self.providerOnly)
        return m
    }

    public func decodeMachineClass(_ meta: ObjectMeta, _ spec: MappingReader) -> VitiMachineClass? {
        defer { spec.finish() }
        let context = spec.context
        if spec.bool("enabled") == false {
            context.error(spec.value("enabled"), spec.child("enabled"), "a disabled MachineClass cannot be used; remove it or set enabled: true")
        }
        _ = spec.value("default"); _ = spec.value("category"); _ = spec.value("description"); _ = spec.value("displayName")
        _ = spec.value("machineProviders")
        if let gpu = spec.mapping("gpu") {
            if let v = gpu.value("cores"), MappingReader.int(v, gpu.child("cores"), context, in: 0...1024) ?? 0 > 0 {
                let message = "\"gpu\" needs a cluster (it passes a node's GPU through); remove it"
                if context.strict { context.error(v, gpu.child("cores"), message) } else { context.warning(v, gpu.child("cores"), message) }
            }
            _ = gpu.value("manufacturer")
            gpu.finish()
        }
        var cores = 1, sockets = 1, threads = 1
        if let cpu = spec.mapping("cpu", required: true) {
            if cpu.required("cores") != nil { cores = cpu.int("cores", in: 1...256) ?? cores }
            sockets = cpu.int("sockets", in: 1...16) ?? sockets
            threads = cpu.int("threads", in: 1...8) ?? threads
            cpu.finish()
        }
        var memory: UInt64?, minimum: UInt64?, maximum: UInt64?
        if let mem = spec.mapping("memory", required: true) {
            memory = mem.required("quantity").flatMap { bytes($0, mem.child("quantity"), context) }
            // Bounds for what a Machine may override, as upstream's webhook checks them.
            minimum = mem.value("minQuantity").flatMap { bytes($0, mem.child("minQuantity"), context) }
            maximum = mem.value("maxQuantity").flatMap { bytes($0, mem.child("maxQuantity"), context) }
            mem.finish()
        }
        guard let memory else { return nil }
        return VitiMachineClass(metadata: meta, cores: cores, sockets: sockets, threads: threads, memoryBytes: memory,
                                minMemoryBytes: minimum, maxMemoryBytes: maximum)
    }
}

extension VitiMachine {
    init(metadata: ObjectMeta) { self.metadata = metadata }
}
