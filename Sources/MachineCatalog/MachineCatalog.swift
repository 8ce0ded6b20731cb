import YAMLTree

/// Every known board, looked up by name or alias. Pure: the caller reads the
/// files and hands over their bytes.
public struct MachineCatalog: Sendable {
    public private(set) var profiles: [MachineProfile] = []

    public init(profiles: [MachineProfile] = []) { self.profiles = profiles }

    public var names: [String] { profiles.map(\.name).sorted() }

    /// Every name a user may write: profile names and aliases.
    public var allNames: [String] { (profiles.map(\.name) + profiles.flatMap(\.aliases)).sorted() }

    /// The profile for `name` (or alias). When an alias is shared by boards of
    /// different architectures (`virt`), the architecture picks one.
    public func lookup(_ name: String, architecture: Architecture? = nil) -> MachineProfile? {
        if let p = profiles.first(where: { $0.name == name }) { return p }
        let hits = profiles.filter { $0.aliases.contains(name) }
        if let architecture, let p = hits.first(where: { $0.architectures.contains(architecture) }) { return p }
        return hits.first
    }

    /// Parses profile files; later files override earlier ones of the same
    /// name, so user profiles replace built-in ones.
    public static func parse(files: [(path: String, bytes: [UInt8])]) throws(DiagnosticError) -> MachineCatalog {
        let context = DecodeContext(strict: true)
        var raw: [ProfileFields] = []
        for file in files {
            let docs: [YAMLDocument]
            do {
                docs = try YAMLParser.parse(file.bytes, file: file.path)
            } catch {
                context.error(at: error.location, "", error.message)
                continue
            }
            for doc in docs {
                if let f = ProfileFields(doc.root, context) { raw.append(f) }
            }
        }
        var catalog = MachineCatalog()
        var byName: [String: ProfileFields] = [:]
        for f in raw { byName[f.name] = f }
        // A later file of the same name wins: only that one is resolved.
        for f in raw where byName[f.name]?.location == f.location {
            if let p = f.resolve(byName, context) {
                catalog.profiles.removeAll { $0.name == p.name }
                catalog.profiles.append(p)
            }
        }
        if context.hasErrors { throw DiagnosticError(context.diagnostics) }
        return catalog
    }
}

/// A profile as written; `basedOn` fills what is left out from another profile.
struct ProfileFields {
    var name: String
    var location: SourceLocation
    var node: YAMLNode
    var basedOn: String?

    init?(_ root: YAMLNode, _ context: DecodeContext) {
        guard let m = MappingReader(root, path: "", context: context),
              let name = m.string("name", required: true) else { return nil }
        self.name = name
        self.location = root.location
        self.node = root
        self.basedOn = m.string("basedOn")
    }

    func resolve(_ all: [String: ProfileFields], _ context: DecodeContext, depth: Int = 0) -> MachineProfile? {
        var base: MachineProfile?
        if let basedOn {
            guard depth < 4, let parent = all[basedOn], parent.name != name else {
                context.error(node, "basedOn", "unknown or circular base profile \"\(basedOn)\"; "
                    + Suggestion.hint(basedOn, in: all.keys.sorted()))
                return nil
            }
            base = parent.resolve(all, context, depth: depth + 1)
            if base == nil { return nil }
        }
        return decode(base: base, context)
    }

    private func decode(base: MachineProfile?, _ context: DecodeContext) -> MachineProfile? {
        guard let m = MappingReader(node, path: "", context: context) else { return nil }
        _ = m.string("name"); _ = m.string("basedOn")
        let summary = m.string("description") ?? base?.summary ?? ""
        let warning = m.string("warning") ?? base?.warning
        let aliases = m.stringList("aliases") ?? []
        var architectures = base?.architectures ?? []
        if let list = m.sequence("architectures") {
            architectures = list.compactMap { node, path in
                enumValue(node, path, Architecture.self, context)
            }
        }
        var binary = base?.qemuBinary, machine = base?.qemuMachine
        if let q = m.mapping("qemu") {
            binary = q.string("binary") ?? binary
            machine = q.string("machine") ?? machine
            q.finish()
        }
        var cpu = base?.cpu
        if let c = m.mapping("cpu") {
            let d = c.string("default", required: base == nil) ?? cpu?.defaultModel ?? ""
            cpu = MachineProfile.CPUPolicy(
                defaultModel: d,
                allowed: c.stringList("allowed") ?? cpu?.allowed ?? [d],
                selectable: c.bool("selectable") ?? cpu?.selectable ?? true)
            c.finish()
        }
        var memory = base?.memory
        if let mm = m.mapping("memory") {
            func bytes(_ key: String) -> UInt64? {
                guard let v = mm.value(key) else { return nil }
                guard let s = v.scalar else {
                    context.error(v, mm.child(key), "expected \(Quantity.syntaxHint), got \(describe(v))")
                    return nil
                }
                do { return try Quantity.bytes(s) } catch {
                    context.error(v, mm.child(key), error.description)
                    return nil
                }
            }
            var policy = MachineProfile.OutOfRange.reject
            if let v = mm.value("outOfRange"), let p = enumValue(v, mm.child("outOfRange"), MachineProfile.OutOfRange.self, context) {
                policy = p
            }
            memory = MachineProfile.MemoryPolicy(
                fixedBytes: bytes("fixed"), defaultBytes: bytes("default"),
                minBytes: bytes("min"), maxBytes: bytes("max"), outOfRange: policy)
            mm.finish()
        }
        var pflash = base?.pflash ?? .kernel
        var flashAttachment = base?.flashAttachment ?? .drive
        var diskDevice = base?.diskDevice, cdrom = base?.cdromDevice
        if let fw = m.mapping("firmware") {
            if let v = fw.value("pflash"), let p = enumValue(v, fw.child("pflash"), MachineProfile.FirmwareLoad.self, context) {
                pflash = p
            }
            if let v = fw.value("attach"), let a = enumValue(v, fw.child("attach"), MachineProfile.FlashAttachment.self, context) {
                flashAttachment = a
            }
            fw.finish()
        }
        if let d = m.mapping("disks") {
            diskDevice = d.string("device") ?? diskDevice
            cdrom = d.string("cdrom") ?? cdrom
            d.finish()
        }
        var canUART = base?.canUART
        if let c = m.mapping("can") {
            canUART = c.int("uart", in: 0...15)
            c.finish()
        }
        let uarts = m.stringList("uarts") ?? base?.uarts ?? []
        let maxCPUs = m.int("maxCPUs", in: 1...1024) ?? base?.maxCPUs ?? 1
        let accelerators = m.stringList("accelerators") ?? base?.accelerators ?? ["tcg"]
        let sample = m.string("sample") ?? base?.sample
        let powerdown = m.bool("powerdown") ?? base?.gracefulPowerdown ?? false
        let snapshots = m.bool("snapshots") ?? base?.snapshots ?? true
        m.finish()

        guard !architectures.isEmpty else {
            context.error(node, "architectures", "required field is missing; valid: " + Architecture.allCases.map(\.rawValue).joined(separator: ", "))
            return nil
        }
        guard let binary, let machine else {
            context.error(node, "qemu", "required field is missing (qemu.binary and qemu.machine)")
            return nil
        }
        guard let cpu, let memory else {
            context.error(node, cpu == nil ? "cpu" : "memory", "required field is missing")
            return nil
        }
        if let canUART, canUART >= uarts.count {
            context.error(node, "can.uart", "UART \(canUART) does not exist; the board has \(uarts.count)")
        }
        var profile = MachineProfile(
            name: name, summary: summary, architectures: architectures, qemuBinary: binary,
            qemuMachine: machine, aliases: aliases, warning: warning, cpu: cpu, memory: memory,
            maxCPUs: maxCPUs, uarts: uarts, pflash: pflash, diskDevice: diskDevice,
            cdromDevice: cdrom, canUART: canUART, accelerators: accelerators, gracefulPowerdown: powerdown, sample: sample,
            location: location)
        profile.snapshots = snapshots
        profile.flashAttachment = flashAttachment
        return profile
    }
}

/// A scalar that must be one of an enum's raw values, with a suggestion when not.
public func enumValue<E: RawRepresentable & CaseIterable>(
    _ node: YAMLNode, _ path: String, _ type: E.Type, _ context: DecodeContext
) -> E? where E.RawValue == String {
    guard let s = node.scalar else {
        context.error(node, path, "expected one of " + E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ") + ", got a \(node.kindName)")
        return nil
    }
    if let e = E(rawValue: s) { return e }
    context.error(node, path, "\"\(s)\" is not valid; " + Suggestion.hint(s, in: E.allCases.map(\.rawValue)))
    return nil
}
