/// Cuts a byte stream into top-level JSON texts. QMP sends one object per
/// line, but clients may not; counting brackets outside strings handles both.
/// A chunk is scanned where it lies; only an unfinished text is kept for the
/// next one, so each byte is copied once, into the text it belongs to.
public struct JSONStreamSplitter: Sendable {
    /// The start of a text that continues in the next chunk.
    private var buffer: [UInt8] = []
    private var depth = 0
    private var inString = false
    private var escaped = false
    /// Where the text being scanned starts, in the bytes being scanned.
    private var start: Int?
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
        var out = Split()
        var ok = true
        if buffer.isEmpty, let fresh = bytes.withContiguousStorageIfAvailable({ chunk -> Bool in
            guard scan(chunk, from: 0, into: &out) else { return false }
            if let s = start {
                buffer.append(contentsOf: chunk[s...])
                start = 0
            }
            return true
        }) {
            ok = fresh
        } else {
            // A text carried over: the chunk joins it, and only the new bytes are scanned.
            var whole = buffer
            buffer = []
            let from = whole.count
            whole.append(contentsOf: bytes)
            ok = whole.withUnsafeBufferPointer { scan($0, from: from, into: &out) }
            if ok, let s = start {
                whole.removeFirst(s)
                start = 0
                buffer = whole
            }
        }
        if !ok {
            reset()
            out.failure = .unbalanced
        } else if buffer.count > maxMessageBytes {
            reset()
            out.failure = .tooLarge
        }
        return out
    }

    /// Scans `p[from...]`, a text's start (if any) at `start`; false at the
    /// first byte that cannot be JSON outside a text.
    private mutating func scan(_ p: UnsafeBufferPointer<UInt8>, from: Int, into out: inout Split) -> Bool {
        var i = from
        while i < p.count {
            let b = p[i]
            if inString {
                if escaped { escaped = false }
                else if b == UInt8(ascii: "\\") { escaped = true }
                else if b == UInt8(ascii: "\"") { inString = false }
            } else {
                switch b {
                case UInt8(ascii: "\""):
                    if depth == 0 { return false }
                    inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    if depth == 0 { start = i }
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth < 0 { return false }
                    if depth == 0, let s = start {
                        out.messages.append(Array(p[s...i]))
                        start = nil
                    }
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                    break
                default:
                    if depth == 0 { return false }
                }
            }
            i += 1
        }
        return true
    }

    private mutating func reset() {
        buffer = []
        depth = 0
        inString = false
        escaped = false
        start = nil
    }
}
