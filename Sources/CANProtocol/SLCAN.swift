/// Lawicel SLCAN, the ASCII framing MCUs without a CAN controller speak over
/// a UART: `tIIILDD..\r`, `TIIIIIIIILDD..\r`, `rIIIL\r`, `RIIIIIIIIL\r`.
public enum SLCAN {
    public static func encode(_ f: CANFrame) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: f.remote ? (f.extended ? "R" : "r") : (f.extended ? "T" : "t"))]
        out += Hex.fixed(f.id, width: f.extended ? 8 : 3)
        out.append(Hex.digits[f.dlc])
        if !f.remote {
            for b in f.data { out += [Hex.digits[Int(b >> 4)], Hex.digits[Int(b & 0xF)]] }
        }
        out.append(0x0D)
        return out
    }

    /// One line, without its `\r`.
    public static func decode(_ line: some Collection<UInt8>) throws(CANCodecError) -> CANFrame {
        let l = Array(line)
        guard let kind = l.first else { throw .malformed("empty SLCAN line") }
        let extended: Bool, remote: Bool
        switch kind {
        case UInt8(ascii: "t"): (extended, remote) = (false, false)
        case UInt8(ascii: "T"): (extended, remote) = (true, false)
        case UInt8(ascii: "r"): (extended, remote) = (false, true)
        case UInt8(ascii: "R"): (extended, remote) = (true, true)
        default: throw .malformed("not an SLCAN frame: \(String(decoding: l.prefix(16), as: UTF8.self))")
        }
        let idWidth = extended ? 8 : 3
        guard l.count >= 1 + idWidth + 1, let id = Hex.number(l[1...idWidth]),
              let dlcDigit = Hex.value(l[1 + idWidth]), dlcDigit <= 8 else {
            throw .malformed("bad SLCAN id or length")
        }
        let dlc = Int(dlcDigit)
        let payload = l[(2 + idWidth)...]
        var data: [UInt8] = []
        if remote {
            guard payload.isEmpty else { throw .malformed("SLCAN remote frame with data") }
        } else {
            guard payload.count == dlc * 2, let bytes = Hex.bytes(payload) else { throw .malformed("SLCAN data does not match its length") }
            data = bytes
        }
        let f = CANFrame(id: id, extended: extended, remote: remote, data: data, dlc: dlc)
        guard f.isValid else { throw .malformed("SLCAN id out of range") }
        return f
    }

    /// Cuts a UART byte stream into SLCAN lines at `\r` (a `\n` is ignored).
    public struct LineSplitter: Sendable {
        private var line: [UInt8] = []
        public static let maxLine = 64
        public init() {}

        /// Complete lines; an overlong line is returned as one malformed line.
        public mutating func append(_ bytes: some Sequence<UInt8>) -> [[UInt8]] {
            var out: [[UInt8]] = []
            for b in bytes {
                if b == 0x0D {
                    if !line.isEmpty { out.append(line) }
                    line.removeAll(keepingCapacity: true)
                } else if b != 0x0A {
                    line.append(b)
                    if line.count > Self.maxLine {
                        out.append(line)
                        line.removeAll(keepingCapacity: true)
                    }
                }
            }
            return out
        }
    }
}
