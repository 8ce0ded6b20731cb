import ControlAPI
import YAMLTree

/// The two texts `vtarget diff` compares for one object, normalised the
/// same way on both sides (parsed and emitted again), so only what `apply`
/// would change shows.
public struct ObjectDiff: Sendable, Equatable {
    public var kind: String
    public var namespace: String
    public var name: String
    /// Empty when the supervisor has no such object.
    public var old: String
    public var new: String

    public var oldLabel: String { "live/\(kind)/\(namespace)/\(name)" }
    public var newLabel: String { "merged/\(kind)/\(namespace)/\(name)" }

    /// One entry per input object that apply would create or configure, in the input's order.
    public static func changes(desired: [AppliedResource], live: [LiveObject]) -> [ObjectDiff] {
        var index: [ObjectKey: LiveObject] = [:]
        for l in live { index[l.key] = l }
        var out: [ObjectDiff] = []
        for d in desired {
            let stored = index[ObjectKey(kind: d.kind, namespace: d.namespace, name: d.name)]
            if let stored, SyncPlan.difference(stored: stored, wanted: d) == nil { continue }
            var old = stored.map { normalised($0.yaml) } ?? ""
            var new = normalised(d.yaml)
            // The supervisor also restarts an instance whose relative paths
            // move: say so as a line on both sides, only when it differs.
            if let stored, stored.directory != d.directory {
                old = "# relative paths from: \(stored.directory)\n" + old
                new = "# relative paths from: \(d.directory)\n" + new
            }
            // Stored text that differs only in how it is written (another
            // vtarget's emitter): apply stores it again; say so rather than show nothing.
            if old == new { new += "# (stored text differs only in formatting: apply stores it again)\n" }
            out.append(ObjectDiff(kind: d.kind, namespace: d.namespace, name: d.name, old: old, new: new))
        }
        return out
    }

    /// Parsed and emitted again; text that does not parse is compared as it is.
    static func normalised(_ yaml: String) -> String {
        guard let root = (try? YAMLParser.parse(yaml, file: "stored"))?.first?.root else { return yaml }
        return YAMLEmitter.emit(root)
    }
}
