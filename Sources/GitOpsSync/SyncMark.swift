import YAMLTree

/// The annotation that says "sync applied this, from that directory", so a
/// prune can tell sync's objects from the ones `apply` made by hand.
public enum SyncMark {
    public static let annotation = "vtarget.dev/managed-by-sync"

    /// `root` with `metadata.annotations[annotation] = owner`; other keys
    /// keep their places and the new one goes last, so positions the
    /// supervisor reports in the marked text still lead back to the file.
    public static func mark(_ root: YAMLNode, owner: String) -> YAMLNode {
        guard case .mapping(var pairs) = root.content,
              let m = pairs.firstIndex(where: { $0.key.scalar == "metadata" }),
              case .mapping(var meta) = pairs[m].value.content else { return root }
        let value = YAMLNode.string(owner)
        if let a = meta.firstIndex(where: { $0.key.scalar == "annotations" }), case .mapping(var notes) = meta[a].value.content {
            if let i = notes.firstIndex(where: { $0.key.scalar == annotation }) {
                notes[i].value = value
            } else {
                notes.append(YAMLPair(key: .string(annotation), value: value))
            }
            meta[a].value.content = .mapping(notes)
        } else {
            // Absent, or null (`annotations:` with nothing after it).
            meta.removeAll { $0.key.scalar == "annotations" }
            meta.append(YAMLPair(key: .string("annotations"), value: .mapping([(annotation, value)])))
        }
        pairs[m].value.content = .mapping(meta)
        var out = root
        out.content = .mapping(pairs)
        return out
    }
}
