/// An HTTP/1.1 response read incrementally, as the supervisor sends them on
/// a connection the client closes after one request: a status line, headers,
/// then a body delimited by Content-Length, by chunked encoding (a watch's
/// stream), or by the end of the connection. Pure: bytes in, parts out.
///
/// Why not NIOHTTP1's decoder: reaching it takes a channel, and a CLI call
/// is a whole process whose first request paid ~2 ms for NIO's bootstrap,
/// event loop threads and pipeline (measured on `apply`: 2.0 ms from the
/// call to a connected channel, the supervisor's answer 0.4 ms). The server
/// is our own (Hummingbird), and this reads only what it writes.
public struct HTTPResponseReader: Sendable {
    public enum Part: Equatable, Sendable {
        case head(status: Int)
        case body([UInt8])
        case end
    }

    public struct Malformed: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
    }

    private enum State: Equatable {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    private var state = State.head
    private var pending: [UInt8] = []
    /// A head larger than this is no answer of the supervisor's.
    static let maxHead = 64 << 10

    public init() {}

    public var isComplete: Bool { state == .done }

    /// The parts `bytes` complete.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(Malformed) -> [Part] {
        pending += bytes
        var out: [Part] = []
        var i = 0
        defer { pending.removeFirst(i) }
        while true {
            switch state {
            case .done:
                return out
            case .head:
                guard let end = Self.find([13, 10, 13, 10], in: pending, from: i) else {
                    guard pending.count - i <= Self.maxHead else { throw Malformed(description: "a response head over \(Self.maxHead) bytes") }
                    return out
                }
                let (status, framing) = try Self.parseHead(pending[i..<end])
                out.append(.head(status: status))
                i = end + 4
                state = framing
                if case .fixed(0) = state { state = .done; out.append(.end) }
            case .fixed(let remaining):
                let n = min(remaining, pending.count - i)
                guard n > 0 else { return out }
                out.append(.body(Array(pending[i..<(i + n)])))
                i += n
                if n == remaining { state = .done; out.append(.end) } else { state = .fixed(remaining: remaining - n) }
            case .chunkSize:
                guard let eol = Self.find([13, 10], in: pending, from: i) else { return out }
                let line = pending[i..<eol].prefix { $0 != 0x3B }  // chunk extensions after ';'
                guard let size = Int(String(decoding: line, as: UTF8.self).trimmingSpaces, radix: 16), size >= 0 else {
                    throw Malformed(description: "a chunk size that is not hexadecimal")
                }
                i = eol + 2
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let n = min(remaining, pending.count - i)
                guard n > 0 else { return out }
                out.append(.body(Array(pending[i..<(i + n)])))
                i += n
                state = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            case .chunkDataEnd:
                guard pending.count - i >= 2 else { return out }
                guard pending[i] == 13, pending[i + 1] == 10 else { throw Malformed(description: "a chunk not ended by CRLF") }
                i += 2
                state = .chunkSize
            case .trailers:
                guard let eol = Self.find([13, 10], in: pending, from: i) else { return out }
                let empty = eol == i
                i = eol + 2
                if empty { state = .done; out.append(.end) }
            case .untilClose:
                guard pending.count > i else { return out }
                out.append(.body(Array(pending[i...])))
                i = pending.count
            }
        }
    }

    /// The connection ended: the end of a body delimited by it, else an
    /// error when the response was cut short.
    public mutating func finish() throws(Malformed) -> [Part] {
        switch state {
        case .done: return []
        case .untilClose:
            state = .done
            return [.end]
        default:
            throw Malformed(description: "the connection ended in the middle of the response")
        }
    }

    private static func parseHead(_ head: ArraySlice<UInt8>) throws(Malformed) -> (Int, State) {
        let lines = head.split(separator: 10, omittingEmptySubsequences: false).map {
            String(decoding: $0.last == 13 ? $0.dropLast() : $0, as: UTF8.self)
        }
        let statusLine = lines.first ?? ""
        let words = statusLine.split(separator: " ", maxSplits: 2)
        guard words.count >= 2, words[0].hasPrefix("HTTP/1."), words[1].count == 3, let status = Int(words[1]) else {
            throw Malformed(description: "not an HTTP/1.1 status line: \(statusLine.prefix(80))")
        }
        var length: Int?
        var chunked = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...]).trimmingSpaces
            if name == "content-length" {
                guard let n = Int(value), n >= 0 else { throw Malformed(description: "a Content-Length that is not a count: \(value.prefix(40))") }
                length = n
            } else if name == "transfer-encoding" {
                chunked = value.lowercased().split(separator: ",").last.map { $0.trimmingSpaces } == "chunked"
            }
        }
        // No body: 1xx, 204, 304 (a HEAD's answer is not asked for).
        if (100..<200).contains(status) || status == 204 || status == 304 { return (status, .fixed(remaining: 0)) }
        if chunked { return (status, .chunkSize) }
        if let length { return (status, .fixed(remaining: length)) }
        return (status, .untilClose)
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count - start >= needle.count else { return nil }
        var i = start
        while i + needle.count <= bytes.count {
            if bytes[i] == needle[0], bytes[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

private extension StringProtocol {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
