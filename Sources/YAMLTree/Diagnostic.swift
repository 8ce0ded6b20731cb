/// A user-facing problem with the input: where it is, which field, what is
/// wrong and what would be valid.
public struct Diagnostic: Sendable, CustomStringConvertible, Equatable {
    public enum Severity: String, Sendable { case error, warning }

    public var severity: Severity
    public var location: SourceLocation?
    /// The field path, `spec.qemuConfig.memory`; nil for the document as a whole.
    public var field: String?
    public var message: String

    public init(_ severity: Severity, at location: SourceLocation?, field: String?, _ message: String) {
        self.severity = severity
        self.location = location
        self.field = field
        self.message = message
    }

    /// One line, whatever the input held: control characters in a key or a
    /// value (a NUL, an escape sequence) are shown escaped, never sent raw to a terminal.
    public var description: String {
        var s = ""
        if let location { s += "\(location): " }
        s += "\(severity.rawValue): "
        if let field, !field.isEmpty { s += "\(field): " }
        return Diagnostic.escapingControls(s + message)
    }

    /// `s` with control characters (C0, DEL, C1), line and paragraph
    /// separators and bidirectional overrides written as escapes: `\0`, `\t`,
    /// `\n`, `\r`, else `\u` and four hex digits, as YAML and JSON spell them.
    public static func escapingControls(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: needsEscape) else { return s }
        var out = ""
        for u in s.unicodeScalars {
            if needsEscape(u) { out += escape(u) } else { out.unicodeScalars.append(u) }
        }
        return out
    }

    /// One character as YAML's double-quoted style (and JSON) escapes it.
    static func escape(_ u: Unicode.Scalar) -> String {
        switch u {
        case "\0": return "\\0"
        case "\t": return "\\t"
        case "\n": return "\\n"
        case "\r": return "\\r"
        default:
            let hex = String(u.value, radix: 16, uppercase: true)
            return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }
    }

    static func needsEscape(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (0x7F...0x9F).contains(u.value) || (0x2028...0x2029).contains(u.value)
            || (0x202A...0x202E).contains(u.value) || (0x2066...0x2069).contains(u.value)
    }
}

/// Everything wrong with an input, reported together so a user fixes it in one go.
public struct DiagnosticError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }
    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// "did you mean" suggestions: the closest candidate within a small edit distance.
public enum Suggestion {
    public static func nearest(_ word: String, in candidates: some Sequence<String>) -> String? {
        let w = Array(word.lowercased().utf8)
        var best: (String, Int)?
        for c in candidates {
            let d = distance(w, Array(c.lowercased().utf8))
            if best == nil || d < best!.1 { best = (c, d) }
        }
        guard let best else { return nil }
        let bound = max(2, min(w.count, best.0.utf8.count) / 3)
        if best.1 <= bound { return best.0 }
        // A prefix or substring is a good guess too ("stm32" → "stm32vldiscovery").
        if let hit = candidates.first(where: { $0.lowercased().hasPrefix(word.lowercased()) && word.count >= 3 }) {
            return hit
        }
        return nil
    }

    public static func hint(_ word: String, in candidates: some Sequence<String>) -> String {
        let list = Array(candidates)
        if let n = nearest(word, in: list) { return "did you mean \"\(n)\"?" }
        return "valid: " + list.map { "\"\($0)\"" }.joined(separator: ", ")
    }

    static func distance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
