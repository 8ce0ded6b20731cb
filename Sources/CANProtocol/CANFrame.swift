/// One classic CAN frame. Pure value; every codec here maps to and from it.
public struct CANFrame: Sendable, Equatable, CustomStringConvertible {
    public var id: UInt32
    public var extended: Bool
    public var remote: Bool
    /// 0 to 8 bytes; for a remote frame, empty with `dlc` saying how many are asked.
    public var data: [UInt8]
    public var dlc: Int

    public init(id: UInt32, extended: Bool? = nil, remote: Bool = false, data: [UInt8] = [], dlc: Int? = nil) {
        self.id = id
        self.extended = extended ?? (id > 0x7FF)
        self.remote = remote
        self.data = data
        self.dlc = dlc ?? data.count
    }

    public var isValid: Bool {
        dlc >= 0 && dlc <= 8 && data.count <= 8 && (remote || data.count == dlc)
            && id <= (extended ? 0x1FFF_FFFF : 0x7FF)
    }

    /// `123#DEADBEEF`, cansend's syntax.
    public var description: String { CANText.cansend(self) }
}

public enum CANCodecError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    public var description: String {
        if case .malformed(let why) = self { return why }
        return "malformed"
    }
}

enum Hex {
    static let digits = Array("0123456789ABCDEF".utf8)

    static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    static func number(_ s: some Collection<UInt8>) -> UInt32? {
        guard !s.isEmpty, s.count <= 8 else { return nil }
        var v: UInt32 = 0
        for c in s {
            guard let d = value(c) else { return nil }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    static func bytes(_ s: some Collection<UInt8>) -> [UInt8]? {
        guard s.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        var it = s.makeIterator()
        while let hi = it.next(), let lo = it.next() {
            guard let h = value(hi), let l = value(lo) else { return nil }
            out.append(h << 4 | l)
        }
        return out
    }

    static func fixed(_ v: UInt32, width: Int) -> [UInt8] {
        (0..<width).reversed().map { digits[Int((v >> (UInt32($0) * 4)) & 0xF)] }
    }
}
