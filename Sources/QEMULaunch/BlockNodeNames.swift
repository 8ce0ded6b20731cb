/// Hands out block node names and device ids QEMU accepts: letters, digits,
/// `-`, `_` and `.`, a letter first, at most 31 characters, none twice.
/// A name depends only on its prefix and drive name (and on the names taken
/// before it), so a plan's node names are stable from run to run.
struct BlockNodeNames: Sendable {
    static let maxLength = 31
    private var taken: Set<String> = []

    /// `prefix-name`, sanitized; a name too long (drive names may have 63
    /// characters) or already taken is cut and ends in a hash of the whole.
    mutating func claim(_ prefix: String, _ name: String) -> String {
        let whole = prefix + "-" + name
        var candidate = Self.sanitized(whole)
        var salt: UInt64 = 0
        while candidate.count > Self.maxLength || taken.contains(candidate) {
            let hash = String(Self.fnv1a(whole, salt: salt) & 0xFF_FFFF, radix: 16)
            let suffix = "-" + String(repeating: "0", count: 6 - hash.count) + hash
            candidate = String(Self.sanitized(whole).prefix(Self.maxLength - suffix.count)) + suffix
            salt += 1
        }
        taken.insert(candidate)
        return candidate
    }

    static func sanitized(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            let ok = (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || (u >= "0" && u <= "9") || u == "-" || u == "_" || u == "."
            out.unicodeScalars.append(ok ? u : "_")
        }
        if let first = out.unicodeScalars.first, !((first >= "a" && first <= "z") || (first >= "A" && first <= "Z")) {
            out = "n" + out
        }
        return out
    }

    static func fnv1a(_ s: String, salt: UInt64) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ salt
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }
}
