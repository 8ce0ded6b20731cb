/// The RFC 3339 UTC timestamps the CLI puts in objects (`2026-11-30T12:51:46Z`)
/// and kubectl's ages, without Foundation: this module stays pure.
public enum Timestamp {
    /// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SS[.frac]Z`; nil for anything else.
    public static func parse(_ s: String) -> Double? {
        let u = Array(s.utf8)
        guard u.count >= 20, u.last == UInt8(ascii: "Z"), u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"),
              u[10] == UInt8(ascii: "T"), u[13] == UInt8(ascii: ":"), u[16] == UInt8(ascii: ":") else { return nil }
        func number(_ r: Range<Int>) -> Int? {
            var n = 0
            for c in u[r] {
                guard c >= 0x30 && c <= 0x39 else { return nil }
                n = n * 10 + Int(c - 0x30)
            }
            return n
        }
        guard let y = number(0..<4), let mo = number(5..<7), let d = number(8..<10),
              let h = number(11..<13), let mi = number(14..<16), let sec = number(17..<19),
              (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, sec < 61 else { return nil }
        var fraction = 0.0
        if u.count > 20 {
            // Digit by digit: a long fraction would overflow an Int.
            guard u.count > 21, u[19] == UInt8(ascii: "."), u[20..<(u.count - 1)].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            var scale = 0.1
            for c in u[20..<(u.count - 1)] {
                fraction += Double(c - 0x30) * scale
                scale /= 10
            }
        } else if u[19] != UInt8(ascii: "Z") {
            return nil
        }
        return Double(days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) + fraction
    }

    /// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    static func days(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// kubectl's ages: 45s, 3m12s, 25m, 5h, 2d; never negative.
    public static func duration(_ seconds: Double) -> String {
        // Int(_:) traps on infinity, NaN and anything beyond 2⁶³.
        let t = seconds.isFinite ? Int(min(max(0, seconds), 1e15)) : 0
        if t < 120 { return "\(t)s" }
        if t < 600 { return "\(t / 60)m\(t % 60)s" }
        if t < 3 * 3600 { return "\(t / 60)m" }
        if t < 48 * 3600 { return "\(t / 3600)h" }
        return "\(t / 86400)d"
    }
}
