import YAMLTree

extension YAMLNode {
    /// The value under `key` of a mapping.
    public subscript(key: String) -> YAMLNode? {
        guard case .mapping(let pairs) = content else { return nil }
        return pairs.first { $0.key.scalar == key }?.value
    }

    /// The value down a path of keys (`["spec", "qemuConfig", "machine"]`).
    public subscript(path path: [String]) -> YAMLNode? {
        path.reduce(Optional(self)) { node, key in node?[key] }
    }

    /// A mapping's string entries (`metadata.labels`); empty for anything else.
    public var stringEntries: [String: String] {
        guard case .mapping(let pairs) = content else { return [:] }
        var out: [String: String] = [:]
        for p in pairs { if let k = p.key.scalar, let v = p.value.scalar { out[k] = v } }
        return out
    }

    /// How many entries a mapping (or items a sequence) has; 0 for a scalar.
    public var count: Int {
        switch content {
        case .mapping(let pairs): return pairs.count
        case .sequence(let items): return items.count
        case .scalar: return 0
        }
    }
}
