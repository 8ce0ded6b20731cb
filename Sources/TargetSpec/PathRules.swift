/// Lexical path rules for `file:` sources. Symlinks are checked where files
/// are opened; here nothing touches the file system.
public enum PathRules {
    /// `path` joined to `directory` and normalised, or nil when it is absolute
    /// or climbs out of `directory`.
    public static func resolveRelative(_ path: String, in directory: String) -> String? {
        guard !path.hasPrefix("/"), !path.isEmpty else { return nil }
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." {
                if parts.isEmpty { return nil }
                parts.removeLast()
            } else {
                parts.append(c)
            }
        }
        guard !parts.isEmpty else { return nil }
        let base = normalize(directory)
        return (base == "/" ? "" : base) + "/" + parts.joined(separator: "/")
    }

    public static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }
}
