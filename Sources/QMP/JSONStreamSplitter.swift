/// Cuts a byte stream into top-level JSON texts. QMP sends one object per
/// line, but clients may not; counting brackets outside strings handles both.
public struct JSONStreamSplitter: Sendable {
    private var buffer: [UInt8] = []
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var start: Int?
    private var scanned = 0
    /// A message larger than this is a protocol error, not something to buffer.
    public let maxMessageBytes: Int

    public init(maxMessageBytes: Int = 1 << 20) { self.maxMessageBytes = maxMessageBytes }

    public enum Failure: Error, Sendable { case tooLarge, unbalanced }

    /// What one chunk held: the complete texts before any failure, and the
    /// failure. Both, because a command followed by garbage in one write must
    /// still run (QEMU runs it, then reports the garbage); after a failure the
    /// rest of the chunk is dropped and the splitter starts afresh.
    public struct Split: Sendable {
        public var messages: [[UInt8]] = []
        public var failure: Failure?
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) -> Split {
        buffer.append(contentsOf: bytes)
        var out = Split()
        while scanned < buffer.count {
            let b = buffer[scanned]
            if inString {
                if escaped { escaped = false }
                else if b == UInt8(ascii: "\\") { escaped = true }
                else if b == UInt8(ascii: "\"") { inString = false }
            } else {
                switch b {
                case UInt8(ascii: "\""):
                    if depth == 0 { reset(); out.failure = .unbalanced; return out }
                    inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    if depth == 0 { start = scanned }
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth < 0 { reset(); out.failure = .unbalanced; return out }
                    if depth == 0, let s = start {
                        out.messages.append(Array(buffer[s...scanned]))
                        start = nil
                    }
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                    break
                default:
                    if depth == 0 { reset(); out.failure = .unbalanced; return out }
                }
            }
            scanned += 1
        }
        if depth == 0, start == nil, !inString {
            buffer.removeAll(keepingCapacity: true)
            scanned = 0
        } else if let s = start, s > 0 {
            buffer.removeFirst(s)
            scanned -= s
            start = 0
        }
        if buffer.count > maxMessageBytes { reset(); out.failure = .tooLarge }
        return out
    }

    private mutating func reset() {
        buffer = []
        depth = 0
        inString = false
        escaped = false
        start = nil
        scanned = 0
    }
}
