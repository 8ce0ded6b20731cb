import TargetSpec

/// What an image is, from its first bytes: how `format: auto` decides.
public enum ImageFormat: String, Sendable {
    case elf, ihex, raw, qcow2

    public static func sniff(_ prefix: [UInt8]) -> ImageFormat {
        if prefix.starts(with: [0x7F, 0x45, 0x4C, 0x46]) { return .elf }
        if prefix.starts(with: [0x51, 0x46, 0x49, 0xFB]) { return .qcow2 }
        if isIntelHex(prefix) { return .ihex }
        return .raw
    }

    /// Intel HEX: lines of `:` and hex digits; judged on what is available.
    static func isIntelHex(_ p: [UInt8]) -> Bool {
        guard p.first == UInt8(ascii: ":"), p.count >= 11 else { return false }
        for b in p {
            switch b {
            case UInt8(ascii: ":"), UInt8(ascii: "\r"), UInt8(ascii: "\n"): continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "F"), UInt8(ascii: "a")...UInt8(ascii: "f"): continue
            default: return false
            }
        }
        return true
    }

    public init(_ format: Drive.Format, sniffed prefix: [UInt8]) {
        switch format {
        case .auto: self = Self.sniff(prefix)
        case .elf: self = .elf
        case .ihex: self = .ihex
        case .raw: self = .raw
        case .qcow2: self = .qcow2
        }
    }
}
