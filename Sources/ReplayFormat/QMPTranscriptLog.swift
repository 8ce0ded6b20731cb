/// `traces/qmp.log`: the QMP conversation of a recorded board, one line per
/// message, as `(SECONDS.MICROS) WHO WAY JSON`: monotonic seconds since the
/// capture began (the clock of the serial logs), the proxy's number of the
/// client (`-` for QEMU's events, which go to every client), the way it went
/// (`>` to QEMU, `<` back to the client, `!` an event), and the message as
/// it crossed the proxy. A message a client spread over several lines is
/// kept on one: a raw line break can only stand between JSON tokens, where
/// a space means the same.
public enum QMPTranscriptLog {
    public enum Way: Character, Sendable, CaseIterable {
        case toQEMU = ">"
        case fromQEMU = "<"
        case event = "!"
    }

    public static func line(microseconds: Int64, client: Int?, way: Way, json: [UInt8]) -> String {
        let text = String(decoding: json.map { $0 == 0x0A || $0 == 0x0D ? 0x20 : $0 }, as: UTF8.self)
        return "(" + TraceTime.text(microseconds) + ") " + (client.map(String.init) ?? "-") + " " + String(way.rawValue) + " " + text
    }

    /// The fields of one line; nil when it is not one `line` writes.
    public static func parse(_ line: Substring) -> (microseconds: Int64, client: Int?, way: Way, json: Substring)? {
        guard line.first == "(", let close = line.firstIndex(of: ")"),
              let us = TraceTime.parse(line[line.index(after: line.startIndex)..<close]) else { return nil }
        let fields = line[line.index(after: close)...].split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0].isEmpty, fields[2].count == 1, let way = Way(rawValue: fields[2].first!),
              !fields[3].isEmpty else { return nil }
        let client: Int?
        if fields[1] == "-" { client = nil } else if let n = Int(fields[1]), n >= 0 { client = n } else { return nil }
        return (us, client, way, fields[3])
    }
}
