/// Kubernetes quantities (`256M` is 256×10⁶, `256Mi` is 256×2²⁰) and Go-style
/// durations (`1h30m`, `500ms`), the two unit syntaxes the YAML uses.
public enum Quantity {
    static let suffixes: [(String, UInt64)] = [
        ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40),
        ("k", 1_000), ("K", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000),
    ]

    /// The largest byte quantity accepted: 64Ti, beyond any RAM or disk
    /// image a target here has, and far enough below 2⁶³ that sums and
    /// conversions to Int (guest RAM + a cgroup's margin, log sizes) cannot trap.
    public static let maxBytes: UInt64 = 64 << 40

    /// The longest duration accepted: a year. Longer TTLs and timeouts mean
    /// "never" in practice, and far longer ones overflow the integer
    /// milliseconds and nanoseconds they become (a trap, once: SIGILL).
    public static let maxDurationSeconds: Double = 8760 * 3600

    public static let syntaxHint = "a byte quantity: a number with an optional suffix Ki, Mi, Gi, Ti (powers of 1024) or k, M, G, T (powers of 1000), such as 256Mi or 1G, at most 64Ti"

    /// A quantity that does not parse, or is out of bounds: the message says which.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Bytes in a quantity; throws for a malformed, zero or too large one.
    public static func bytes(_ text: String) throws(Problem) -> UInt64 {
        let s = text.trimmingSpaces
        var digits = Substring(s), factor: UInt64 = 1
        if let (suffix, f) = suffixes.first(where: { s.hasSuffix($0.0) }) {
            digits = digits.dropLast(suffix.count)
            factor = f
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw Problem(description: "expected \(syntaxHint), got \"\(text)\"")
        }
        // Digits that overflow UInt64 are as much too large as a product that does.
        let n = UInt64(digits)
        let (r, overflow) = (n ?? .max).multipliedReportingOverflow(by: factor)
        if n == nil || overflow || r > maxBytes {
            throw Problem(description: "\(s) is above the maximum of \(format(maxBytes))")
        }
        if r == 0 { throw Problem(description: "expected more than 0 bytes, got \"\(text)\"") }
        return r
    }

    /// Bytes in a quantity; nil when malformed, zero or above `maxBytes`.
    public static func parseBytes(_ text: String) -> UInt64? { try? bytes(text) }

    /// The shortest exact spelling in binary units, for messages.
    public static func format(_ bytes: UInt64) -> String {
        for (suffix, factor) in [("Ti", UInt64(1) << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
        where bytes % factor == 0 {
            return "\(bytes / factor)\(suffix)"
        }
        return "\(bytes)"
    }

    public static let durationHint = "a duration such as 30s, 15m, 1h30m or 500ms, at most 8760h (a year)"

    /// Seconds in a Go-style duration; throws for a malformed one, for one
    /// above `maxDurationSeconds`, and for zero unless `allowZero` (a delay
    /// of 0s removes a delay; a TTL of 0s means nothing).
    public static func duration(_ text: String, allowZero: Bool = false) throws(Problem) -> Double {
        var s = Substring(text.trimmingSpaces)
        let malformed = Problem(description: "expected \(durationHint), got \"\(text)\"")
        guard !s.isEmpty else { throw malformed }
        var total = 0.0
        let units: [(String, Double)] = [("ms", 0.001), ("h", 3600), ("m", 60), ("s", 1)]
        if s == "0" { s = "" }  // Go's one unitless duration
        while !s.isEmpty {
            let digits = s.prefix { ($0 >= "0" && $0 <= "9") || $0 == "." }
            guard !digits.isEmpty, let n = Double(digits) else { throw malformed }
            s = s.dropFirst(digits.count)
            guard let (unit, factor) = units.first(where: { s.hasPrefix($0.0) }) else { throw malformed }
            s = s.dropFirst(unit.count)
            total += n * factor
        }
        if total > maxDurationSeconds {
            throw Problem(description: "\(text.trimmingSpaces) is above the maximum of 8760h (a year)")
        }
        if total == 0 && !allowZero {
            throw Problem(description: "expected a duration above 0 (\(durationHint)), got \"\(text)\"")
        }
        return total
    }

    /// Seconds in a Go-style duration; nil when malformed, not positive or above `maxDurationSeconds`.
    public static func parseDuration(_ text: String) -> Double? { try? duration(text) }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
