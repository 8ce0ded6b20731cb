import Synchronization
import YAMLTree

/// Every known board, looked up by name or alias. Pure: the caller reads the
/// files and hands over their bytes (or, for a `ProfileShelf`, a way to).
public struct MachineCatalog: Sendable {
    fileprivate var parsed: [MachineProfile] = []
    /// Set when profiles are parsed as they are asked for.
    private let shelf: ProfileShelf?

    /// Every profile (a shelf's all parsed, once).
    public var profiles: [MachineProfile] { shelf?.all() ?? parsed }

    public init(profiles: [MachineProfile] = []) {
        parsed = profiles
        shelf = nil
    }

    /// A catalog that parses a profile when it is first looked up by its
    /// own name, and all of them only for what needs all (an alias, an
    /// unknown name, the list of names).
    public init(shelf: ProfileShelf) {
        self.shelf = shelf
    }

    public var names: [String] { profiles.map(\.name).sorted() }

    /// Every name a user may write: profile names and aliases.
    public var allNames: [String] { (profiles.map(\.name) + profiles.flatMap(\.aliases)).sorted() }

    /// The profile for `name` (or alias). When an alias is shared by boards of
    /// different architectures (`virt`), the architecture picks one.
    public func lookup(_ name: String, architecture: Architecture? = nil) -> MachineProfile? {
        if let p = shelf?.profile(named: name) { return p }
        let profiles = self.profiles
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
                catalog.parsed.removeAll { $0.name == p.name }
                catalog.parsed.append(p)
            }
        }
        if context.hasErrors { throw DiagnosticError(context.diagnostics) }
        return catalog
    }
}

/// Profile files read and parsed when first needed. Starting a board
/// parsed all 16 built-in profiles (and read their files) each time, ~2 ms
/// of a start of ~40 (2026-12-03), to use one or two: looked up by its own
/// name, a profile is parsed from its own file, `<name>.yaml`, and those of
/// its `basedOn` chain. Only profiles named as their file are found that way
/// (the built-in ones are); anything else (an alias, an unknown name, a file
/// that does not parse) is looked for among all files, parsed once.
public final class ProfileShelf: Sendable {
    public typealias File = (path: String, bytes: [UInt8])
    /// The file that holds profile `name` if its own, else nil.
    let file: @Sendable (String) -> File?
    /// Every profile file.
    let allFiles: @Sendable () -> [File]
    private struct State {
        var byName: [String: MachineProfile] = [:]
        var all: [MachineProfile]?
    }
    private let state = Mutex(State())

    public init(file: @escaping @Sendable (String) -> File?, allFiles: @escaping @Sendable () -> [File]) {
        self.file = file
        self.allFiles = allFiles
    }

    /// The profile named `name`, from its own file and its bases' only; nil when that does not find it.
    func profile(named name: String) -> MachineProfile? {
        if let p = state.withLock({ $0.byName[name] ?? $0.all?.first { $0.name == name } }) { return p }
        let context = DecodeContext(strict: true)
        var fields: [String: ProfileFields] = [:]
        var next: String? = name
        while let n = next, fields[n] == nil, fields.count < 5 {
            guard let f = file(n), let docs = try? YAMLParser.parse(f.bytes, file: f.path), docs.count == 1,
                  let profile = ProfileFields(docs[0].root, context), profile.name == n else { return nil }
            fields[n] = profile
            next = profile.basedOn
        }
        guard let p = fields[name]?.resolve(fields, context), !context.hasErrors else { return nil }
        state.withLock { $0.byName[name] = p }
        return p
    }

    /// Every profile, parsed once. The files are the built-in ones, which
    /// the tests parse whole (`builtInCatalog()`): one that did not parse
    /// here would be a broken installation, and its boards unknown.
    func all() -> [MachineProfile] {
        if let all = state.withLock({ $0.all }) { return all }
        let all = (try? MachineCatalog.parse(files: allFiles()))?.parsed ?? []
        state.withLock { $0.all = all }
        return all
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
