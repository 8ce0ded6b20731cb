#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MachineCatalog
import ResourceKit
import VMSpec
import YAMLTree

public struct DecodeOptions: Sendable {
    public var strict: Bool
    public var allowHostPaths: Bool
    public var allowExtraArgs: Bool

    public init(strict: Bool = true, allowHostPaths: Bool = false, allowExtraArgs: Bool = false) {
        self.strict = strict
        self.allowHostPaths = allowHostPaths
        self.allowExtraArgs = allowExtraArgs
    }
}

/// One input file's text, with the directory its relative `file:` sources resolve against.
public struct SourceFile: Sendable {
    public var path: String
    public var directory: String
    public var bytes: [UInt8]

    public init(path: String, directory: String, bytes: [UInt8]) {
        self.path = path
        self.directory = directory
        self.bytes = bytes
    }
}

public struct DecodedResources: Sendable {
    public var resources: [Resource]
    public var warnings: [Diagnostic]
}

/// YAML documents → validated resources. Every problem is collected with its
/// position and field path; any error fails the whole input.
public struct ResourceDecoder {
    /// Each kind's decoder, by the registry's kind name: a kind decodes when
    /// the registry knows it and a decoder is registered here.
    typealias KindDecoder = @Sendable (ResourceDecoder) -> (ObjectMeta, MappingReader, SourceFile, DecodeContext) -> Resource?
    static let decoders: [String: KindDecoder] = [
        "QemuVirtualTarget": { d in { meta, m, file, context in spec(m) { d.decodeTarget(meta, $0, file, context) }.map(Resource.target) } },
        "VirtualTargetInstance": { d in { meta, m, _, context in spec(m) { d.decodeInstance(meta, $0, context) }.map(Resource.instance) } },
        "VirtualTargetPool": { d in { meta, m, _, context in spec(m) { d.decodePool(meta, $0, context) }.map(Resource.pool) } },
        "ConfigMap": { d in { meta, m, _, context in d.decodeConfigMap(meta, m, context).map(Resource.configMap) } },
        "Secret": { d in { meta, m, _, context in d.decodeSecret(meta, m, context).map(Resource.secret) } },
        "VirtualMachine": { d in { meta, m, _, _ in spec(m) { d.vm.decodeVirtualMachine(meta, $0) }.map(Resource.virtualMachine) } },
        "VirtualMachineInstance": { d in { meta, m, _, _ in spec(m) { d.vm.decodeVirtualMachineInstance(meta, $0) }.map(Resource.virtualMachineInstance) } },
        "VirtualMachineInstancetype": { d in { meta, m, _, _ in spec(m) { d.vm.decodeInstancetype(meta, $0, cluster: false) }.map(Resource.instancetype) } },
        "VirtualMachineClusterInstancetype": { d in { meta, m, _, _ in spec(m) { d.vm.decodeInstancetype(meta, $0, cluster: true) }.map(Resource.instancetype) } },
        "VirtualMachinePreference": { d in { meta, m, _, _ in spec(m) { d.vm.decodePreference(meta, $0, cluster: false) }.map(Resource.preference) } },
        "VirtualMachineClusterPreference": { d in { meta, m, _, _ in spec(m) { d.vm.decodePreference(meta, $0, cluster: true) }.map(Resource.preference) } },
        "Machine": { d in { meta, m, _, _ in spec(m) { d.vm.decodeMachine(meta, $0) }.map(Resource.machine) } },
        "MachineClass": { d in { meta, m, _, _ in spec(m) { d.vm.decodeMachineClass(meta, $0) }.map(Resource.machineClass) } },
        "PersistentVolumeClaim": { d in { meta, m, _, _ in spec(m) { d.vm.decodePersistentVolumeClaim(meta, $0) }.map(Resource.volumeClaim) } },
        "DataVolume": { d in { meta, m, _, _ in spec(m) { d.vm.decodeDataVolume(meta, $0) }.map(Resource.volumeClaim) } },
    ]

    /// A kind's required `spec`; its `status` is the supervisor's, accepted and ignored.
    static func spec<T>(_ m: MappingReader, _ decode: (MappingReader) -> T?) -> T? {
        _ = m.value("status")
        return m.mapping("spec", required: true).flatMap(decode)
    }

    /// `kind` → `apiVersion` of every kind this decoder reads.
    public static let apiVersions: [String: String] = Dictionary(uniqueKeysWithValues:
        KindRegistry.builtIn.kinds.filter { decoders[$0.kind] != nil }.map { ($0.kind, $0.apiVersion) })

    static let forbiddenExtraArgs = ["-sandbox", "-monitor", "-qmp", "-qmp-pretty", "-daemonize", "-runas", "-chroot", "-mon", "-chardev", "-serial", "-S"]

    let catalog: MachineCatalog
    let options: DecodeOptions
    var vm: VMDecoder { VMDecoder(options: VMDecodeOptions(allowHostPaths: options.allowHostPaths)) }

    public init(catalog: MachineCatalog, options: DecodeOptions = DecodeOptions()) {
        self.catalog = catalog
        self.options = options
    }

    /// Whether `files` may hold a board (a QemuVirtualTarget), the only
    /// resource decoded against the machine catalog: its kind spelled out,
    /// or a backslash, since only an escape (YAML's double quotes, JSON) can
    /// make a scalar whose bytes differ from its text. An input that cannot
    /// is decoded with an empty catalog and never reads the profiles: ~20
    /// files, ~0.8 ms of every VM's start.
    public static func mayNameMachines(_ files: [SourceFile]) -> Bool {
        let kind = Array("QemuVirtualTarget".utf8)
        return files.contains { $0.bytes.contains(0x5C) || $0.bytes.firstRange(of: kind) != nil }
    }

    /// `resolvingVMs: false` leaves VMs unresolved, for a caller that decodes
    /// resources one by one and resolves them together (`resolveVMs`).
    public func decode(_ files: [SourceFile], resolvingVMs: Bool = true) throws(DiagnosticError) -> DecodedResources {
        let context = DecodeContext(strict: options.strict)
        var resources: [Resource] = []
        for file in files {
            let documents: [YAMLDocument]
            do {
                documents = try YAMLParser.parse(file.bytes, file: file.path)
            } catch {
                context.error(at: error.location, "", error.message)
                continue
            }
            for doc in documents {
                if let r = decodeDocument(doc, file, context) { resources.append(r) }
            }
        }
        checkUniqueNames(resources, context)
        if resolvingVMs && !context.hasErrors { Self.resolveVMs(&resources, context) }
        if context.hasErrors { throw DiagnosticError(context.diagnostics) }
        return DecodedResources(resources: resources, warnings: context.diagnostics)
    }

    /// Resolves every VirtualMachine, VirtualMachineInstance and Machine
    /// against the instancetypes, preferences and classes among `resources`.
    public static func resolveVMs(_ resources: inout [Resource]) throws(DiagnosticError) {
        let context = DecodeContext()
        resolveVMs(&resources, context)
        if context.hasErrors { throw DiagnosticError(context.diagnostics) }
    }

    static func resolveVMs(_ resources: inout [Resource], _ context: DecodeContext) {
        var types: [VMInstancetype] = [], prefs: [VMPreference] = [], classes: [VitiMachineClass] = []
        for r in resources {
            switch r {
            case .instancetype(let t): types.append(t)
            case .preference(let p): prefs.append(p)
            case .machineClass(let c): classes.append(c)
            default: break
            }
        }
        let resolver = VMResolver(instancetypes: types, preferences: prefs, classes: classes)
        for i in resources.indices {
            switch resources[i] {
            case .virtualMachine(var v):
                v.definition = resolver.resolve(v, context)
                resources[i] = .virtualMachine(v)
            case .virtualMachineInstance(var v):
                v.definition = resolver.resolve(v, context)
                resources[i] = .virtualMachineInstance(v)
            case .machine(var m):
                m.definition = resolver.resolve(m, context)
                resources[i] = .machine(m)
            default: break
            }
        }
    }

    private func checkUniqueNames(_ resources: [Resource], _ context: DecodeContext) {
        var seen: [String: SourceLocation] = [:]
        for r in resources {
            let key = "\(r.kind)/\(r.metadata.namespace)/\(r.metadata.name)"
            if let first = seen[key] {
                context.error(at: r.metadata.location, "metadata.name",
                              "\(r.kind) \"\(r.metadata.name)\" is defined twice (first at \(first))")
            } else {
                seen[key] = r.metadata.location
            }
        }
    }

    private func decodeDocument(_ doc: YAMLDocument, _ file: SourceFile, _ context: DecodeContext) -> Resource? {
        guard let m = MappingReader(doc.root, path: "", context: context) else { return nil }
        guard let kindNode = m.required("kind"), let kind = MappingReader.string(kindNode, "kind", context) else { return nil }
        guard let expectedAPI = Self.apiVersions[kind] else {
            context.error(kindNode, "kind", "unknown kind \"\(kind)\"; " + Suggestion.hint(kind, in: Self.apiVersions.keys.sorted()))
            return nil
        }
        if let apiNode = m.required("apiVersion"), let api = MappingReader.string(apiNode, "apiVersion", context), api != expectedAPI {
            context.error(apiNode, "apiVersion", "\(kind) needs apiVersion \"\(expectedAPI)\", got \"\(api)\"")
        }
        guard let meta = decodeMeta(m, context) else {
            _ = m.value("spec"); _ = m.value("status"); _ = m.value("data"); _ = m.value("binaryData")
            m.finish()
            return nil
        }
        let result = Self.decoders[kind]?(self)(meta, m, file, context)
        m.finish()
        return result
    }

    private func decodeMeta(_ m: MappingReader, _ context: DecodeContext) -> ObjectMeta? {
        guard let meta = m.mapping("metadata", required: true) else { return nil }
        defer { meta.finish() }
        _ = meta.value("annotations"); _ = meta.value("uid"); _ = meta.value("resourceVersion")
        _ = meta.value("creationTimestamp"); _ = meta.value("generation")
        let nameNode = meta.required("name")
        var namespace = "default"
        if let nsNode = meta.value("namespace"), let ns = MappingReader.string(nsNode, meta.child("namespace"), context) {
            if checkLabel(ns, nsNode, meta.child("namespace"), context) { namespace = ns }
        }
        let labels = Dictionary(meta.stringMap("labels")?.map { ($0.0, $0.1) } ?? [], uniquingKeysWith: { a, _ in a })
        guard let nameNode, let name = MappingReader.string(nameNode, meta.child("name"), context),
              checkLabel(name, nameNode, meta.child("name"), context) else { return nil }
        return ObjectMeta(name: name, namespace: namespace, labels: labels, location: nameNode.location)
    }

    /// Names must be DNS-1123 labels (`Names.isDNSLabel`).
    func checkLabel(_ s: String, _ node: YAMLNode, _ path: String, _ context: DecodeContext) -> Bool {
        if Names.isDNSLabel(s) { return true }
        context.error(node, path, "\"\(s)\" is not a valid name: use at most 63 characters of lower-case letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label)")
        return false
    }

    // MARK: ConfigMap

    func decodeConfigMap(_ meta: ObjectMeta, _ m: MappingReader, _ context: DecodeContext) -> ConfigMap? {
        var entries: [String: [UInt8]] = [:]
        var order: [String] = []
        _ = m.value("immutable")
        func add(_ key: String, _ bytes: [UInt8], _ node: YAMLNode, _ path: String) {
            guard Self.isConfigKey(key) else {
                context.error(node, path, "\"\(key)\" is not a valid key: use letters, digits, '-', '_' and '.'")
                return
            }
            if entries[key] != nil {
                context.error(node, path, "key \"\(key)\" appears in both data and binaryData")
                return
            }
            entries[key] = bytes
            order.append(key)
        }
        for (key, value, node) in m.stringMap("data") ?? [] {
            add(key, Array(value.utf8), node, "data.\(key)")
        }
        for (key, value, node) in m.stringMap("binaryData", binary: true) ?? [] {
            guard let bytes = Base64Value.decode(value) else {
                context.error(node, "binaryData.\(key)", "not valid base64")
                continue
            }
            add(key, bytes, node, "binaryData.\(key)")
        }
        return ConfigMap(metadata: meta, entries: entries, keyOrder: order)
    }

    // MARK: Secret

    /// `data` is base64; `stringData` is text and wins for a key in both,
    /// as the API server merges them. `type` is any Kubernetes type: only the keys matter here.
    func decodeSecret(_ meta: ObjectMeta, _ m: MappingReader, _ context: DecodeContext) -> Secret? {
        var entries: [String: [UInt8]] = [:]
        var order: [String] = []
        _ = m.value("immutable")
        _ = m.string("type")
        func add(_ key: String, _ bytes: [UInt8], _ node: YAMLNode, _ path: String) {
            guard Self.isConfigKey(key) else {
                context.error(node, path, "\"\(key)\" is not a valid key: use letters, digits, '-', '_' and '.'")
                return
            }
            if entries[key] == nil { order.append(key) }
            entries[key] = bytes
        }
        for (key, value, node) in m.stringMap("data", binary: true) ?? [] {
            guard let bytes = Base64Value.decode(value) else {
                context.error(node, "data.\(key)", "not valid base64 (a Secret's data is base64; put plain text in stringData)")
                continue
            }
            add(key, bytes, node, "data.\(key)")
        }
        for (key, value, node) in m.stringMap("stringData") ?? [] {
            add(key, Array(value.utf8), node, "stringData.\(key)")
        }
        return Secret(metadata: meta, entries: entries, keyOrder: order)
    }

    /// Kubernetes' rule for env names (`[-._a-zA-Z][-._a-zA-Z0-9]*`): the
    /// same YAML runs on a cluster, and it keeps out `=`, NUL and the empty name.
    public static func isEnvName(_ s: String) -> Bool {
        guard let first = s.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return s.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
                || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E
        }
    }

    public static func isConfigKey(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 253 && s != "." && s != ".." && s.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
                || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E
        }
    }

    // MARK: VirtualTargetInstance

    func decodeInstance(_ meta: ObjectMeta, _ spec: MappingReader, _ context: DecodeContext) -> VirtualTargetInstance? {
        defer { spec.finish() }
        let lifecycle = decodeLifecycle(spec, context, serialDevices: nil)
        guard let ref = spec.mapping("targetRef", required: true) else { return nil }
        defer { ref.finish() }
        _ = ref.value("apiVersion")
        let kind = ref.string("kind") ?? "QemuVirtualTarget"
        checkTargetKind(kind, ref, context)
        if let r = lifecycle.record, r.value != .off, VirtualTargetInstance.vmKinds.contains(kind) {
            context.error(at: r.location, r.path, Self.vmsAreNotRecorded)
        }
        guard let nameNode = ref.required("name"), let name = MappingReader.string(nameNode, ref.child("name"), context),
              checkLabel(name, nameNode, ref.child("name"), context) else { return nil }
        return VirtualTargetInstance(metadata: meta, targetKind: kind, targetName: name, lifecycle: lifecycle)
    }

    /// Why `record: true` is refused on an instance of a VM (the same words as `run --record`'s).
    public static let vmsAreNotRecorded = "VMs are not recorded: QEMU's record/replay needs every disk behind blkreplay and the network "
        + "behind filter-replay, which vtarget does not set up; record a board (a QemuVirtualTarget) instead, or remove record"

    // MARK: VirtualTargetPool

    func decodePool(_ meta: ObjectMeta, _ spec: MappingReader, _ context: DecodeContext) -> VirtualTargetPool? {
        defer { spec.finish() }
        guard let ref = spec.mapping("targetRef", required: true) else { return nil }
        defer { ref.finish() }
        _ = ref.value("apiVersion")
        let kind = ref.string("kind") ?? "QemuVirtualTarget"
        checkTargetKind(kind, ref, context)
        let readiness = decodeReadiness(spec, context, serialDevices: nil)
        let minReady = spec.int("minReady", in: 0...256) ?? 1
        let maxInstances = spec.int("maxInstances", in: 1...1024) ?? max(minReady, 1) * 2
        if maxInstances < minReady {
            context.error(spec.value("maxInstances"), spec.child("maxInstances"), "maxInstances (\(maxInstances)) is below minReady (\(minReady))")
        }
        var recycle = VirtualTargetPool.Recycle.snapshot
        if let v = spec.value("recycle") { recycle = enumValue(v, spec.child("recycle"), VirtualTargetPool.Recycle.self, context) ?? recycle }
        let claimTTL = spec.value("claimTTL").flatMap { duration($0, spec.child("claimTTL"), context) }
        guard let nameNode = ref.required("name"), let name = MappingReader.string(nameNode, ref.child("name"), context),
              checkLabel(name, nameNode, ref.child("name"), context) else { return nil }
        return VirtualTargetPool(metadata: meta, targetKind: kind, targetName: name, minReady: minReady, maxInstances: maxInstances,
                                 recycle: recycle, claimTTLSeconds: claimTTL, readiness: readiness)
    }

    func checkTargetKind(_ kind: String, _ ref: MappingReader, _ context: DecodeContext) {
        let valid = ["QemuVirtualTarget"] + VirtualTargetInstance.vmKinds
        if !valid.contains(kind) {
            context.error(ref.value("kind"), ref.child("kind"), "targetRef.kind \"\(kind)\" has no local backend; valid: "
                          + valid.map { "\"\($0)\"" }.joined(separator: ", "))
        }
    }

    // MARK: Lifecycle

    func decodeReadiness(_ spec: MappingReader, _ context: DecodeContext, serialDevices: [String]?) -> Readiness? {
        guard let r = spec.mapping("readiness") else { return nil }
        var readiness: Readiness?
        let device = r.string("device", required: true)
        let pattern = r.string("pattern", required: true)
        var timeout = 60.0
        if let v = r.value("timeout") { timeout = duration(v, r.child("timeout"), context) ?? timeout }
        // An empty pattern matches before any output: Ready at once, which is never what was meant.
        if pattern == "" {
            context.error(r.value("pattern"), r.child("pattern"), "empty: it would match before any output; give the text that means ready")
        } else if let pattern, (try? Regex(pattern)) == nil {
            context.error(r.value("pattern"), r.child("pattern"), "not a valid regular expression")
        }
        if let device, let serialDevices, !serialDevices.contains(device) {
            context.error(r.value("device"), r.child("device"), "no serial device \"\(device)\"; " + Suggestion.hint(device, in: serialDevices))
        }
        if let device, let pattern {
            readiness = Readiness(device: device, pattern: pattern, timeoutSeconds: timeout, location: r.node.location)
        }
        r.finish()
        return readiness
    }

    func decodeLifecycle(_ spec: MappingReader, _ context: DecodeContext, serialDevices: [String]?) -> Lifecycle {
        var l = Lifecycle()
        if let v = spec.value("ttl") { l.ttlSeconds = duration(v, spec.child("ttl"), context) }
        if let v = spec.value("idleTTL") { l.idleTTLSeconds = duration(v, spec.child("idleTTL"), context) }
        if let v = spec.value("restartPolicy") {
            l.restartPolicy = enumValue(v, spec.child("restartPolicy"), RestartPolicy.self, context)
        }
        if let v = spec.value("record") {
            let recording: Recording?
            switch v.scalar {
            // Always/Never too: restartPolicy's words, and a string enum a cluster's CRD schema can
            // declare (a structural schema has no boolean-or-string type).
            case "true", "True", "TRUE", "Always": recording = .always
            case "false", "False", "FALSE", "Never": recording = .off
            case "OnFailure": recording = .onFailure
            default: recording = nil
            }
            if let recording {
                l.record = Located(recording, at: v.location, path: spec.child("record"))
            } else {
                context.error(v, spec.child("record"), "expected true (or Always), false (or Never) or OnFailure (keep only a failed run's bundle), got \(describe(v))")
            }
        }
        l.readiness = decodeReadiness(spec, context, serialDevices: serialDevices)
        for (node, path) in spec.sequence("tests") ?? [] {
            guard let t = MappingReader(node, path: path, context: context) else { continue }
            defer { t.finish() }
            guard let name = t.string("name", required: true) else { continue }
            var steps: [DeclarativeTest.Step] = []
            for (stepNode, stepPath) in t.sequence("steps") ?? [] {
                guard let st = MappingReader(stepNode, path: stepPath, context: context) else { continue }
                defer { st.finish() }
                let device = st.string("device")
                if let device, let serialDevices, !serialDevices.contains(device) {
                    context.error(st.value("device"), st.child("device"), "no serial device \"\(device)\"; " + Suggestion.hint(device, in: serialDevices))
                }
                if st.has("send") == st.has("expect") {
                    _ = st.value("send"); _ = st.value("expect"); _ = st.value("timeout")
                    context.error(stepNode, stepPath, "a step has exactly one of send or expect")
                } else if let text = st.string("send") {
                    steps.append(.send(text, device: device))
                } else if let pattern = st.string("expect") {
                    if pattern.isEmpty {
                        context.error(st.value("expect"), st.child("expect"), "empty: it would match before any output; give the text expected")
                    } else if (try? Regex(pattern)) == nil {
                        context.error(st.value("expect"), st.child("expect"), "not a valid regular expression")
                    }
                    var timeout = 10.0
                    if let v = st.value("timeout") { timeout = duration(v, st.child("timeout"), context) ?? timeout }
                    steps.append(.expect(pattern: pattern, timeoutSeconds: timeout, device: device))
                }
            }
            if steps.isEmpty { context.error(node, t.child("steps"), "a test needs at least one step") }
            l.tests.append(DeclarativeTest(name: name, steps: steps))
        }
        for (node, path) in spec.sequence("sidecars") ?? [] {
            guard let s = MappingReader(node, path: path, context: context) else { continue }
            defer { s.finish() }
            let name = s.string("name", required: true)
            if let name, let n = s.value("name") { _ = checkLabel(name, n, s.child("name"), context) }
            let command = s.stringList("command") ?? []
            if command.isEmpty { context.error(node, s.child("command"), "a sidecar needs a command to run on the host") }
            var env: [(String, String)] = []
            for (e, epath) in s.sequence("env") ?? [] {
                guard let em = MappingReader(e, path: epath, context: context) else { continue }
                defer { em.finish() }
                let value = em.string("value") ?? ""
                guard let n = em.string("name", required: true) else { continue }
                guard Self.isEnvName(n) else {
                    context.error(em.value("name"), em.child("name"), "\"\(n)\" is not a valid environment variable name: use letters, digits, '_', '-' and '.', not starting with a digit (as Kubernetes does); '=' would end the name early and a NUL the whole entry")
                    continue
                }
                env.append((n, value))
            }
            var role = Sidecar.Role.helper
            if let v = s.value("role"), let r = enumValue(v, s.child("role"), Sidecar.Role.self, context) { role = r }
            _ = s.value("args")
            if let name {
                l.sidecars.append(Sidecar(name: name, image: s.string("image"), command: command, env: env, role: role))
            }
        }
        return l
    }

    func duration(_ v: YAMLNode, _ path: String, _ context: DecodeContext, allowZero: Bool = false) -> Double? {
        guard let s = v.scalar else {
            context.error(v, path, "expected \(Quantity.durationHint), got \(describe(v))")
            return nil
        }
        do { return try Quantity.duration(s, allowZero: allowZero) } catch {
            context.error(v, path, error.description)
            return nil
        }
    }

    /// A byte quantity: `DecodeContext.bytes`, read alike for every kind.
    func bytes(_ v: YAMLNode, _ path: String, _ context: DecodeContext) -> UInt64? { context.bytes(v, path) }
}
