/// The serial output of each device as lines, for readiness, `--until` and
/// `expect` patterns. A pattern is matched within one line, never across
/// lines and never against a chunk as it happened to arrive: each line once,
/// when its `\n` comes (without the `\n` and a `\r` before it), and the
/// unfinished last line as it grows (a prompt has no `\n`). A match on
/// the unfinished line that reaches its end does not count when the pattern
/// can look past the end (`$`, `\b`, `\B`, `\z`, `\Z` or a lookahead): that
/// waits for the line to end, so `(a+)+$` does not match the `aaa` of a line
/// that goes on to `aaab`. Each is matched on at most its last 4 KiB, so the
/// text matched per chunk is bounded however long a line grows.
public struct MatchWindows: Sendable {
    public static let tail = 4 << 10
    /// The unfinished last line of each device (its last `tail` bytes).
    var partial: [String: [UInt8]] = [:]

    public init() {}

    /// What `bytes` completed and what is left unfinished, for one device.
    public struct Lines: Sendable {
        public var complete: [String] = []
        public var unfinished: String = ""

        /// Whether `regex` matches one of the lines (see the type's comment).
        public func contain(_ regex: Regex<AnyRegexOutput>, pattern: String) -> Bool {
            if complete.contains(where: { $0.contains(regex) }) { return true }
            guard !unfinished.isEmpty, let m = try? regex.firstMatch(in: unfinished) else { return false }
            return m.range.upperBound < unfinished.endIndex || !MatchWindows.looksPastTheEnd(pattern)
        }
    }

    public mutating func append(key: String, _ bytes: [UInt8]) -> Lines {
        var out = Lines()
        var line = partial[key, default: []]
        for b in bytes {
            if b == UInt8(ascii: "\n") {
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                out.complete.append(String(decoding: line, as: UTF8.self))
                line.removeAll(keepingCapacity: true)
            } else {
                line.append(b)
                // Keep twice the tail so that trimming is rare, not per byte.
                if line.count >= 2 * Self.tail { line.removeFirst(line.count - Self.tail) }
            }
        }
        out.complete = out.complete.map { $0.utf8.count > Self.tail ? Self.lastBytes(of: $0) : $0 }
        if line.count > Self.tail { line.removeFirst(line.count - Self.tail) }
        partial[key] = line
        out.unfinished = String(decoding: line, as: UTF8.self)
        return out
    }

    mutating func append(target: Int, device: String, _ bytes: [UInt8]) -> Lines {
        append(key: "\(target)/\(device)", bytes)
    }

    mutating func reset(key: String) { partial[key] = nil }

    /// Whether a match of `pattern` can depend on what follows it: read from
    /// the source, as Regex does not say (an escaped `\$` only waits too).
    static func looksPastTheEnd(_ pattern: String) -> Bool {
        ["$", "\\b", "\\B", "\\z", "\\Z", "(?=", "(?!"].contains { pattern.contains($0) }
    }

    static func lastBytes(of s: String) -> String {
        String(decoding: Array(s.utf8.suffix(tail)), as: UTF8.self)
    }
}
