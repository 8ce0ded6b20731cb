/// `traces/serial-DEV.in.log`: what went into one serial device, one line
/// per piece handed to QEMU (after pacing: when it really went in), as
/// `(SECONDS.MICROS) "ESCAPED"`: monotonic seconds since the capture began
/// (the clock of `serial/DEV.log`), then the bytes in `SerialComparison`'s
/// escaping (printable ASCII as is, `\r \n \t \" \\`, else `\xHH`).
/// Parenthesised like candump's log so both read alike side by side.
public enum SerialInputTrace {
    public static func line(microseconds: Int64, bytes: [UInt8]) -> String {
        "(" + TraceTime.text(microseconds) + ") \"" + SerialComparison.escape(bytes) + "\""
    }

    /// The time and bytes of one line; nil when it is not one `line` writes.
    public static func parse(_ line: Substring) -> (microseconds: Int64, bytes: [UInt8])? {
        guard line.first == "(", let close = line.firstIndex(of: ")"),
              let us = TraceTime.parse(line[line.index(after: line.startIndex)..<close]) else { return nil }
        let rest = line[line.index(after: close)...]
        guard rest.hasPrefix(" \""), rest.hasSuffix("\""), rest.count >= 3,
              let bytes = unescape(rest.dropFirst(2).dropLast()) else { return nil }
        return (us, bytes)
    }

    /// The inverse of `SerialComparison.escape`; nil for anything it never writes.
    public static func unescape(_ text: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        var it = Array(text.utf8)[...]
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            default: nil
            }
        }
        while let c = it.popFirst() {
            guard c == 0x5C else {
                guard c >= 0x20, c < 0x7F, c != 0x22 else { return nil }
                out.append(c)
                continue
            }
            switch it.popFirst() {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "x"):
                guard let h = it.popFirst().flatMap(hex), let l = it.popFirst().flatMap(hex) else { return nil }
                out.append(h << 4 | l)
            default: return nil
            }
        }
        return out
    }
}

/// Trace timestamps as `SECONDS.MICROS` (six digits), from whole
/// microseconds: a Double of an epoch time has too few digits for them.
public enum TraceTime {
    public static func text(_ microseconds: Int64) -> String {
        let us = max(0, microseconds)
        let frac = String(us % 1_000_000)
        return String(us / 1_000_000) + "." + String(repeating: "0", count: 6 - frac.count) + frac
    }

    /// `12.000345` → 12000345; nil unless digits, a dot and six digits.
    public static func parse(_ text: Substring) -> Int64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 12, parts[1].count == 6,
              parts.allSatisfy({ $0.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }),
              let s = Int64(parts[0]), let us = Int64(parts[1]) else { return nil }
        return s * 1_000_000 + us
    }
}
