/// The replay's verdict on one serial device: the recorded bytes against
/// what the replay printed.
public enum SerialComparison: Sendable, Equatable {
    case identical(bytes: Int)
    /// The first offset where they differ (a missing byte on one side counts
    /// as a difference there), with up to `context` bytes before and after it
    /// on each side.
    case differs(offset: Int, recorded: Window, replayed: Window)

    public struct Window: Sendable, Equatable {
        /// Offset of `bytes[0]` in its stream.
        public var start: Int
        public var bytes: [UInt8]
        /// The byte at the differing offset, nil when that side ended before it.
        public var byteAtOffset: UInt8?
    }

    public static func compare(recorded: [UInt8], replayed: [UInt8], context: Int = 16) -> SerialComparison {
        let common = min(recorded.count, replayed.count)
        var offset = 0
        while offset < common, recorded[offset] == replayed[offset] { offset += 1 }
        if offset == common, recorded.count == replayed.count { return .identical(bytes: common) }
        func window(_ b: [UInt8]) -> Window {
            let start = max(0, offset - context)
            let end = min(b.count, offset + context + 1)
            return Window(start: start, bytes: start < end ? Array(b[start..<end]) : [], byteAtOffset: offset < b.count ? b[offset] : nil)
        }
        return .differs(offset: offset, recorded: window(recorded), replayed: window(replayed))
    }

    /// One line for a person: printable ASCII as is, the rest escaped.
    public var summary: String {
        switch self {
        case .identical(let n): return "serial output identical (\(n) bytes)"
        case .differs(let offset, let a, let b):
            func byte(_ x: UInt8?) -> String { x.map { Self.escape([$0]) } ?? "end of output" }
            return "serial output differs at byte \(offset): recorded \(byte(a.byteAtOffset)), replayed \(byte(b.byteAtOffset)); "
                + "recorded \"\(Self.escape(a.bytes))\" (from \(a.start)), replayed \"\(Self.escape(b.bytes))\" (from \(b.start))"
        }
    }

    public static func escape(_ bytes: [UInt8]) -> String {
        var s = ""
        for b in bytes {
            switch b {
            case 0x0A: s += "\\n"
            case 0x0D: s += "\\r"
            case 0x09: s += "\\t"
            case 0x22: s += "\\\""
            case 0x5C: s += "\\\\"
            case 0x20..<0x7F: s.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789abcdef")
                s += "\\x" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
            }
        }
        return s
    }
}
