/// QEMU's `key=value,key=value` option syntax. Values are escaped here and
/// nowhere else: a `,` inside a value is written `,,`.
public struct QEMUOption: Sendable, CustomStringConvertible {
    public var leading: String?
    public var pairs: [(String, String)]

    public init(_ leading: String? = nil, _ pairs: [(String, String)]) {
        self.leading = leading
        self.pairs = pairs
    }

    public static func escape(_ value: String) -> String {
        value.replacingAll(",", with: ",,")
    }

    public var description: String {
        var parts: [String] = []
        if let leading { parts.append(Self.escape(leading)) }
        for (k, v) in pairs { parts.append("\(k)=\(Self.escape(v))") }
        return parts.joined(separator: ",")
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for c in self {
            if c == target { out += replacement } else { out.append(c) }
        }
        return out
    }
}

/// Renders an argv as one line a POSIX shell reads back to the same words.
public enum ShellQuoting {
    public static func quote(_ word: String) -> String {
        let safe = word.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9")
                || "-_./=:,+@%".unicodeScalars.contains($0)
        }
        if safe, !word.isEmpty { return word }
        return "'" + word.replacingAll("'", with: "'\\''") + "'"
    }

    public static func line(_ argv: [String]) -> String {
        argv.map(quote).joined(separator: " ")
    }
}
