import ControlAPI
import ResourceKit
import TargetSpec
import YAMLTree

extension Supervisor {
    /// The kinds a supervisor stores: every kind of the registry.
    static var storedKinds: Set<String> { Set(KindRegistry.builtIn.kinds.map(\.kind)) }

    /// A row is stored under its kind, namespace and name: they must be what
    /// its YAML says, and names the CLI would accept, or a client could
    /// create in one namespace what it was granted another for, or store a
    /// name (with a NUL, a slash, 300 characters) that no command can delete.
    static func checkIdentities(_ resources: [AppliedResource]) throws(SupervisorError) {
        var problems: [String] = []
        var seen: Set<String> = []
        for r in resources {
            let label = "\(r.kind) \"\(printable(r.name))\""
            guard storedKinds.contains(r.kind) else {
                problems.append("\(label): unknown kind; valid: " + storedKinds.sorted().joined(separator: ", "))
                continue
            }
            if !Names.isDNSLabel(r.name) { problems.append("\(label): not a valid name (a DNS-1123 label)") }
            // A cluster-scoped kind is in the cluster scope, whatever its YAML's namespace says (as kubectl ignores it).
            let clusterScoped = KindRegistry.builtIn.kind(named: r.kind)?.namespaced == false
            if clusterScoped ? r.namespace != KindRegistry.clusterScope : !Names.isDNSLabel(r.namespace) {
                problems.append("\(label): namespace \"\(printable(r.namespace))\" is not a valid namespace")
            }
            guard let root = try? YAMLParser.parse(r.yaml, file: r.kind).first?.root, case .mapping(let top) = root.content else {
                problems.append("\(label): the YAML is not one mapping")
                continue
            }
            func at(_ pairs: [YAMLPair], _ key: String) -> YAMLNode? { pairs.first { $0.key.scalar == key }?.value }
            let meta: [YAMLPair]
            if case .mapping(let m)? = at(top, "metadata")?.content { meta = m } else { meta = [] }
            let kind = at(top, "kind")?.scalar, name = at(meta, "name")?.scalar
            let namespace = KindRegistry.builtIn.storedNamespace(kind: r.kind, at(meta, "namespace")?.scalar ?? "default")
            if kind != r.kind || name != r.name || namespace != r.namespace {
                problems.append("\(label) in namespace \(printable(r.namespace)): its YAML says \(kind.map(printable) ?? "no kind") "
                                + "\"\(name.map(printable) ?? "")\" in namespace \(printable(namespace)); they must agree")
            }
            if !seen.insert("\(r.kind)/\(r.namespace)/\(r.name)").inserted { problems.append("\(label) appears twice in one apply") }
        }
        if !problems.isEmpty { throw SupervisorError(422, problems.joined(separator: "\n")) }
    }

    /// Text fit for an error message: control characters (a NUL) escaped.
    static func printable(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            if u.value < 0x20 || u.value == 0x7F { out += "\\u{\(String(u.value, radix: 16))}" } else { out.unicodeScalars.append(u) }
        }
        return out
    }
}
