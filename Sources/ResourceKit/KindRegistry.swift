import YAMLTree

/// The kinds vtarget knows, found by any spelling kubectl accepts.
public struct KindRegistry: Sendable {
    public let kinds: [ResourceKind]

    public init(_ kinds: [ResourceKind]) { self.kinds = kinds }

    /// The entry whose `kind:` is exactly `name` (as YAML spells it).
    public func kind(named name: String) -> ResourceKind? {
        kinds.first { $0.kind == name }
    }

    /// Where an object of `kind` is kept: its namespace, or "" for a
    /// cluster-scoped kind (kubectl ignores `-n` and `metadata.namespace`
    /// for those), so one applied from any namespace is the same object.
    /// An unknown kind keeps the namespace it was given.
    public func storedNamespace(kind: String, _ namespace: String) -> String {
        self.kind(named: kind)?.namespaced == false ? Self.clusterScope : namespace
    }

    /// The namespace cluster-scoped objects are stored under: no valid
    /// namespace name is empty, so it can never clash with one.
    public static let clusterScope = ""

    /// The columns beside the name for a stored resource of kind `kind`
    /// (`ResourceKind.summary(root:)`); empty for a kind it does not know.
    public func summary(of kind: String, root: YAMLNode) -> [String: String] {
        self.kind(named: kind)?.summary(root: root) ?? [:]
    }

    /// kubectl's resolution: singular, plural, short names, Kind, and the first
    /// three qualified with the group (`qemuvirtualtargets.qemu.kubetarget.dev`,
    /// or `plural.version.group`), case-insensitively.
    public func resolve(_ word: String) throws(UnknownKind) -> ResourceKind {
        let w = word.lowercased()
        if let k = kinds.first(where: { $0.spellings.contains(w) }) { return k }
        let words = kinds.flatMap { [$0.plural, $0.singular] + $0.shortNames + $0.aliases }
        throw UnknownKind(word: word, suggestion: Suggestion.nearest(w, in: words), valid: help)
    }

    /// `resources` ordered for deletion: users of a resource before it, and
    /// otherwise in the order given. Unknown kinds go last.
    public func deleteOrder<T>(_ resources: [T], kind: (T) -> String) -> [T] {
        resources.enumerated()
            .map { (rank: self.kind(named: kind($0.element))?.deleteRank ?? Int.max, offset: $0.offset, resource: $0.element) }
            .sorted { ($0.rank, $0.offset) < ($1.rank, $1.offset) }
            .map(\.resource)
    }

    /// The words `--help` and errors offer: each kind's everyday plural and its
    /// short names (`targets (qvt)`).
    public var help: String {
        kinds.map { k in
            let word = k.everydayName
            let short = (k.shortNames + k.aliases).filter { $0 != word && $0 + "s" != word }
            return short.isEmpty ? word : "\(word) (\(short.joined(separator: ", ")))"
        }.joined(separator: ", ")
    }
}

/// A kind no spelling of which matches; says what would.
public struct UnknownKind: Error, Sendable, Equatable, CustomStringConvertible {
    public var word: String
    public var suggestion: String?
    public var valid: String

    public init(word: String, suggestion: String?, valid: String) {
        self.word = word
        self.suggestion = suggestion
        self.valid = valid
    }

    public var description: String {
        "unknown kind \"\(word)\"; " + (suggestion.map { "did you mean \"\($0)\"? " } ?? "") + "valid: " + valid
    }
}
