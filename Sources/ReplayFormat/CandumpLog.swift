/// `traces/can-DEV.log`: every frame one CAN device of the board sent to its
/// bus or received from it, in can-utils' log format (`candump -L`), which
/// `canplayer`, `log2asc` and python-can's `CanutilsLogReader` read:
///
///     (1764550923.249713) vehicle 123#DEADBEEF T
///
/// wall-clock seconds (the capture's start plus its monotonic offset, so
/// times only grow), the interface (the bus's name), cansend's frame syntax
/// (`12345678#..` extended, `123#R` / `123#R4` remote, `123##1DEAD` CAN FD
/// with its flags digit), and candump's direction flag: `T` sent by this
/// board, `R` received from the bus.
public enum CandumpLog {
    public enum Direction: String, Sendable {
        /// The board put it on the bus.
        case sent = "T"
        /// The bus delivered it to the board.
        case received = "R"
    }

    /// One frame, as far as the log shows it.
    public struct Frame: Sendable, Equatable {
        public var id: UInt32
        public var extended: Bool
        public var remote: Bool
        /// CAN FD: `##` and the flags digit (`brs` 1, `esi` 2).
        public var fd: Bool
        public var fdFlags: UInt8
        /// What a remote frame asks for (its data is empty).
        public var dlc: Int
        public var data: [UInt8]

        public init(id: UInt32, extended: Bool, remote: Bool = false, fd: Bool = false, fdFlags: UInt8 = 0, dlc: Int? = nil, data: [UInt8] = []) {
            self.id = id
            self.extended = extended
            self.remote = remote
            self.fd = fd
            self.fdFlags = fdFlags
            self.dlc = dlc ?? data.count
            self.data = data
        }
    }

    static let digits = Array("0123456789ABCDEF".utf8)

    static func hex(_ value: UInt32, width: Int) -> String {
        var out = [UInt8](repeating: 48, count: width)
        var v = value
        for i in stride(from: width - 1, through: 0, by: -1) {
            out[i] = digits[Int(v & 0xF)]
            v >>= 4
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `123#DEADBEEF`, `12345678#R2`, `123##1DEAD`.
    public static func frameText(_ f: Frame) -> String {
        let id = hex(f.id & (f.extended ? 0x1FFF_FFFF : 0x7FF), width: f.extended ? 8 : 3)
        let data = String(decoding: f.data.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] }, as: UTF8.self)
        if f.fd { return id + "##" + hex(UInt32(f.fdFlags & 0xF), width: 1) + data }
        if f.remote { return id + "#R" + (f.dlc > 0 ? String(f.dlc) : "") }
        return id + "#" + data
    }

    /// One line, without its newline; `interface` must be one word (a bus name).
    public static func line(microseconds: Int64, interface: String, frame: Frame, direction: Direction) -> String {
        "(" + TraceTime.text(microseconds) + ") " + interface + " " + frameText(frame) + " " + direction.rawValue
    }
}
