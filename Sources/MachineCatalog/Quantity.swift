/// Kubernetes quantities (`256M` is 256×10⁶, `256Mi` is 256×2²⁰) and Go-style
/// durations (`1h30m`, `500ms`), the two unit syntaxes the YAML uses.
public enum Quantity {
    static let suffixes: [(String, UInt64)] = [
        ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40),
        ("k", 1_000), ("K", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000),
    ]

    public static let syntaxHint = "a byte quantity: a number with an optional suffix Ki, Mi, Gi, Ti (powers of 1024) or k, M, G, T (powers of 1000), such as 256Mi or 1G"

    public static func parseBytes(_ text: String) -> UInt64? {
        let s = text.trimmingSpaces
        for (suffix, factor) in suffixes where s.hasSuffix(suffix) {
            guard let n = UInt64(s.dropLast(suffix.count)), n > 0 else { return nil }
            let (r, overflow) = n.multipliedReportingOverflow(by: factor)
            return overflow ? nil : r
        }
        guard let n = UInt64(s), n > 0 else { return nil }
        return n
    }

    /// The shortest exact spelling in binary units, for messages.
    public static func format(_ bytes: UInt64) -> String {
        for (suffix, factor) in [("Ti", UInt64(1) << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
        where bytes % factor == 0 {
            return "\(bytes / factor)\(suffix)"
        }
        return "\(bytes)"
    }

    public static let durationHint = "a duration such as 30s, 15m, 1h30m or 500ms"

    /// Seconds in a Go-style duration; nil when malformed or not positive.
    public static func parseDuration(_ text: String) -> Double? {
        var s = Substring(text.trimmingSpaces)
        guard !s.isEmpty else { return nil }
        var total = 0.0
        let units: [(String, Double)] = [("ms", 0.001), ("h", 3600), ("m", 60), ("s", 1)]
        while !s.isEmpty {
            let digits = s.prefix { $0.isNumber || $0 == "." }
            guard !digits.isEmpty, let n = Double(digits) else { return nil }
            s = s.dropFirst(digits.count)
            guard let (unit, factor) = units.first(where: { s.hasPrefix($0.0) }) else { return nil }
            s = s.dropFirst(unit.count)
            total += n * factor
        }
        return total > 0 ? total : nil
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
