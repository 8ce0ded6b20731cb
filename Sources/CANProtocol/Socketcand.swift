/// The socketcand ASCII protocol in raw mode, as python-can's `socketcand`
/// interface speaks it: `< hi >`, `< open CH >`, `< rawmode >`, then
/// `< send ID LEN B B.. >` from the client and `< frame ID SEC.USEC HEX >` to it.
public enum Socketcand {
    public static let hi = Array("< hi >".utf8)
    public static let ok = Array("< ok >".utf8)

    public enum Command: Sendable, Equatable {
        case open(String)
        case rawmode
        case send(CANFrame)
        /// vtarget's own: `< vtarget-fault drop=0.1 delay=5 corrupt=0.01 busoff=NAME|- >`.
        case fault([String: String])
        /// vtarget's own, before `< rawmode >`: this client is a target's CAN
        /// device called NAME; the bus lives as long as such members do.
        case member(String)
        /// vtarget's own: the member is done; answered `< ok >` once it is off
        /// the bus (and, were it the last, once the bus has taken itself down).
        case leave
        case other(String)
    }

    public static func frameMessage(_ f: CANFrame, seconds: Int, microseconds: Int) -> [UInt8] {
        var out = Array("< frame ".utf8)
        out += Hex.fixed(f.id, width: f.extended ? 8 : 3)
        var us = String(microseconds)
        us = String(repeating: "0", count: max(0, 6 - us.count)) + us
        out += Array(" \(seconds).\(us) ".utf8)
        for b in f.data { out += [Hex.digits[Int(b >> 4)], Hex.digits[Int(b & 0xF)]] }
        out += Array(" >".utf8)
        return out
    }

    /// A `< frame ID SEC.USEC HEX >` message as a client receives it.
    public static func parseFrame(_ message: some Collection<UInt8>) -> CANFrame? {
        let words = String(decoding: message, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard words.count >= 5, words[0] == "<", words[1] == "frame", words.last == ">",
              let id = Hex.number(Array(words[2].utf8)) else { return nil }
        let hex = words.count == 6 ? Array(words[4].utf8) : []
        guard let data = Hex.bytes(hex), data.count <= 8 else { return nil }
        return CANFrame(id: id, extended: words[2].count != 3, data: data)
    }

    public static func sendMessage(_ f: CANFrame) -> [UInt8] {
        var out = Array("< send ".utf8) + Hex.fixed(f.id, width: f.extended ? 8 : 3) + Array(" \(f.data.count)".utf8)
        for b in f.data { out += [0x20, Hex.digits[Int(b >> 4)], Hex.digits[Int(b & 0xF)]] }
        return out + Array(" >".utf8)
    }

    /// One `< ... >` message, brackets included.
    public static func parse(_ message: some Collection<UInt8>) throws(CANCodecError) -> Command {
        let text = String(decoding: message, as: UTF8.self)
        guard text.hasPrefix("<"), text.hasSuffix(">") else { throw .malformed("not a socketcand message") }
        let words = text.dropFirst().dropLast().split(separator: " ").map(String.init)
        guard let verb = words.first else { throw .malformed("empty socketcand message") }
        switch verb {
        case "open":
            guard words.count == 2 else { throw .malformed("< open CHANNEL > takes one channel") }
            return .open(words[1])
        case "rawmode": return .rawmode
        case "send":
            guard words.count >= 3, let id = Hex.number(Array(words[1].utf8)), let len = Int(words[2], radix: 16),
                  len >= 0, len <= 8, words.count == 3 + len else {
                throw .malformed("< send ID LEN BYTES.. >: bad id, length or byte count")
            }
            var data: [UInt8] = []
            for w in words[3...] {
                guard w.utf8.count <= 2, let b = Hex.number(Array(w.utf8)) else { throw .malformed("bad data byte \(w)") }
                data.append(UInt8(b))
            }
            let f = CANFrame(id: id, extended: words[1].count > 3, data: data)  // 3 digits: standard, as python-can writes it
            guard f.isValid else { throw .malformed("CAN id out of range") }
            return .send(f)
        case "vtarget-member":
            guard words.count == 2 else { throw .malformed("< vtarget-member NAME > takes one name") }
            return .member(words[1])
        case "vtarget-leave":
            return .leave
        case "vtarget-fault":
            var settings: [String: String] = [:]
            for w in words.dropFirst() {
                let kv = w.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { throw .malformed("fault settings are KEY=VALUE") }
                settings[String(kv[0])] = String(kv[1])
            }
            return .fault(settings)
        default:
            return .other(verb)
        }
    }

    /// Cuts a stream into `< ... >` messages; bytes outside brackets are counted as junk.
    public struct MessageSplitter: Sendable {
        private var buffer: [UInt8] = []
        public private(set) var junk = 0
        /// Longer messages are junk: a server bounds what clients make it buffer.
        public let maxMessage: Int
        public init(maxMessage: Int = 256) { self.maxMessage = maxMessage }

        public mutating func append(_ bytes: some Sequence<UInt8>) -> [[UInt8]] {
            var out: [[UInt8]] = []
            for b in bytes {
                if buffer.isEmpty {
                    if b == UInt8(ascii: "<") { buffer.append(b) } else if b != 0x20 && b != 0x0A && b != 0x0D { junk += 1 }
                    continue
                }
                buffer.append(b)
                if b == UInt8(ascii: ">") {
                    out.append(buffer)
                    buffer.removeAll(keepingCapacity: true)
                } else if buffer.count > maxMessage {
                    junk += buffer.count
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            return out
        }
    }
}

/// can-utils' text forms: `cansend` input and `candump` output.
public enum CANText {
    /// `123#DEADBEEF`, `12345678#00`, `123#R`, `123#R4`, `123#11.22.33`.
    public static func parseCansend(_ text: String) throws(CANCodecError) -> CANFrame {
        let parts = text.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 3 || parts[0].count == 8,
              let id = Hex.number(Array(parts[0].utf8)) else {
            throw .malformed("expected ID#DATA: a 3-digit (standard) or 8-digit (extended) hex id, as cansend takes: 123#DEADBEEF")
        }
        let extended = parts[0].count == 8
        let payload = parts[1].filter { $0 != "." }
        if payload.hasPrefix("R") {
            let dlc = payload.count > 1 ? Int(payload.dropFirst()) : 0
            guard let dlc, dlc <= 8 else { throw .malformed("remote frame length must be 0 to 8") }
            return CANFrame(id: id, extended: extended, remote: true, dlc: dlc)
        }
        guard let data = Hex.bytes(Array(payload.utf8)), data.count <= 8 else {
            throw .malformed("data must be 0 to 8 bytes of hex pairs")
        }
        let f = CANFrame(id: id, extended: extended, data: data)
        guard f.isValid else { throw .malformed("standard ids go up to 7FF") }
        return f
    }

    public static func cansend(_ f: CANFrame) -> String {
        let id = String(decoding: Hex.fixed(f.id, width: f.extended ? 8 : 3), as: UTF8.self)
        if f.remote { return id + "#R" + (f.dlc > 0 ? "\(f.dlc)" : "") }
        return id + "#" + String(decoding: f.data.flatMap { [Hex.digits[Int($0 >> 4)], Hex.digits[Int($0 & 0xF)]] }, as: UTF8.self)
    }

    /// candump's default line: `  vehicle  123   [4]  DE AD BE EF`.
    public static func candump(_ f: CANFrame, bus: String) -> String {
        let id = String(decoding: Hex.fixed(f.id, width: f.extended ? 8 : 3), as: UTF8.self)
        let pad = f.extended ? "" : "     "
        let body = f.remote ? "remote request" : f.data.map { String(decoding: [Hex.digits[Int($0 >> 4)], Hex.digits[Int($0 & 0xF)]], as: UTF8.self) }.joined(separator: " ")
        return "  \(bus)  \(id)\(pad)   [\(f.dlc)]  \(body)"
    }
}
