import YAMLTree

/// Everything the CLI and the supervisor need to know about one kind, so that a
/// new kind is one entry in `KindRegistry.builtIn` instead of six edits.
public struct ResourceKind: Sendable {
    /// The API group; empty for Kubernetes' core group (ConfigMap).
    public var group: String
    public var version: String
    /// `QemuVirtualTarget`, as `kind:` spells it.
    public var kind: String
    public var plural: String
    public var singular: String
    /// What a CRD for this kind would declare as `shortNames`.
    public var shortNames: [String]
    /// vtarget's own words (`targets`, `instances`), accepted as short names are
    /// but kept apart so that a CRD rendered from this entry stays Kubernetes' own.
    public var aliases: [String]
    public var namespaced: Bool
    /// The columns `get` shows after NAME, wide-only ones included.
    public var columns: [Column]
    /// `delete -f` deletes lower ranks first: users of a resource before it.
    public var deleteRank: Int

    public init(group: String, version: String, kind: String, plural: String, singular: String, shortNames: [String] = [],
                aliases: [String] = [], namespaced: Bool = true, columns: [Column], deleteRank: Int) {
        self.group = group
        self.version = version
        self.kind = kind
        self.plural = plural
        self.singular = singular
        self.shortNames = shortNames
        self.aliases = aliases
        self.namespaced = namespaced
        self.columns = columns
        self.deleteRank = deleteRank
    }

    /// The plural people type (`targets`, `configmaps`): help texts offer it first.
    public var everydayName: String { aliases.last ?? plural }

    /// `qemu.kubetarget.dev/v1alpha1`, or `v1` for the core group.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// kubectl's `-o name` prefix: `qemuvirtualtarget.qemu.kubetarget.dev`, `configmap`.
    public var qualifiedName: String { group.isEmpty ? singular : "\(singular).\(group)" }

    /// Every spelling `get`/`delete` accept for this kind, lower-cased.
    public var spellings: [String] {
        let full = [singular, plural, kind.lowercased()]
        var words = full + shortNames + aliases
        if !group.isEmpty { words += full.map { "\($0).\(group)" } + full.map { "\($0).\(version).\(group)" } }
        var seen = Set<String>()
        return words.filter { seen.insert($0).inserted }
    }

    /// The columns `get` shows for `node`: the wide ones too when `wide`.
    public func cells(_ node: YAMLNode, now: Double, wide: Bool) -> [String] {
        columns.filter { wide || !$0.wide }.map { $0.cell(node, now) }
    }

    public func headers(wide: Bool) -> [String] {
        columns.filter { wide || !$0.wide }.map(\.header)
    }

    /// The columns the stored object alone decides (not its live status, not
    /// the clock), keyed by the lower-cased header: what the supervisor's
    /// `ResourceInfo.summary` carries for a resource as applied.
    public func summary(root: YAMLNode) -> [String: String] {
        var out: [String: String] = [:]
        for c in columns where c.source == .object { out[c.header.lowercased()] = c.cell(root, 0) }
        return out
    }
}

/// One column of `get`'s table.
public struct Column: Sendable {
    public var header: String
    /// Only with `-o wide`.
    public var wide: Bool
    public var source: Source
    /// The cell from the object's node tree and the time now (seconds since 1970).
    public var cell: @Sendable (YAMLNode, Double) -> String

    /// What a cell reads, which decides where it can be computed.
    public enum Source: Sendable {
        /// The object as applied: the supervisor can summarise it from storage.
        case object
        /// The live `status` the supervisor adds to instances and pools.
        case status
        /// The clock too (AGE, EXPIRES): it changes while the object does not.
        case clock
    }

    public init(_ header: String, wide: Bool = false, source: Source = .object, cell: @escaping @Sendable (YAMLNode, Double) -> String) {
        self.header = header
        self.wide = wide
        self.source = source
        self.cell = cell
    }

    /// A scalar at `path`, or `missing` when it is absent.
    public static func field(_ header: String, _ path: String..., wide: Bool = false, missing: String = "-") -> Column {
        Column(header, wide: wide, source: path.first == "status" ? .status : .object) { node, _ in node[path: path]?.scalar ?? missing }
    }

    /// The time since the first timestamp of `paths` that is present (kubectl's AGE).
    public static func age(_ paths: [String]...) -> Column {
        Column("AGE", source: .clock) { node, now in
            guard let t = paths.lazy.compactMap({ node[path: $0]?.scalar.flatMap(Timestamp.parse) }).first else { return "<unknown>" }
            return Timestamp.duration(now - t)
        }
    }

    /// The time left until the timestamp at `path`.
    public static func until(_ header: String, _ path: String..., wide: Bool = false) -> Column {
        Column(header, wide: wide, source: .clock) { node, now in
            node[path: path]?.scalar.flatMap(Timestamp.parse).map { Timestamp.duration($0 - now) } ?? "-"
        }
    }
}
