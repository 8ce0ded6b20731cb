import ResourceKit

/// Names of generated objects, containers, volumes and ports: DNS-1123-safe
/// and stable (the same input always gives the same names).
public enum KubeNames {
    /// `parts` joined with `-` when that is a DNS-1123 label; otherwise a
    /// shortened form ending in a hash of the whole, so two long names stay apart.
    public static func label(_ parts: String...) -> String {
        let joined = parts.joined(separator: "-")
        if Names.isDNSLabel(joined) { return joined }
        var head = String(joined.lowercased().map { c -> Character in
            (c >= "a" && c <= "z") || (c >= "0" && c <= "9") ? c : "-"
        }.prefix(54))
        while head.hasSuffix("-") { head.removeLast() }
        return (head.isEmpty ? "x" : head) + "-" + hash(joined)
    }

    /// A container port name (IANA_SVC_NAME: at most 15 characters, lower
    /// case, a letter, no `--`), `prefix-name` when that fits, else hashed.
    public static func port(_ prefix: String, _ name: String) -> String {
        let s = prefix + "-" + name
        if isPortName(s) { return s }
        return prefix.prefix(6) + "-" + hash(s)
    }

    static func isPortName(_ s: String) -> Bool {
        s.utf8.count <= 15 && Names.isDNSLabel(s) && !s.contains("--") && s.contains { $0 >= "a" && $0 <= "z" }
    }

    /// 8 hex digits of FNV-1a: stable across runs and platforms, unlike `hashValue`.
    public static func hash(_ s: String) -> String {
        var h: UInt32 = 0x811C_9DC5
        for b in s.utf8 { h = (h ^ UInt32(b)) &* 0x0100_0193 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}

/// The labels and annotations that say vtarget made an object, and from what.
public enum KubeLabels {
    public static let managedBy = "app.kubernetes.io/managed-by"
    public static let manager = "vtarget"
    public static let name = "app.kubernetes.io/name"
    public static let component = "app.kubernetes.io/component"
    /// `file:line:column` of each resource the object was made from.
    public static let source = "vtarget.dev/source"
    /// `Kind/name` of each resource the object was made from.
    public static let madeFrom = "vtarget.dev/made-from"
}
