/// The recent output of each serial device, as text to match against. Only
/// the new bytes and a tail before them are searched, so matching costs the
/// size of the new output, not of a 64 KiB window per chunk.
struct MatchWindows {
    static let tail = 4 << 10
    var buffers: [String: [UInt8]] = [:]

    mutating func append(target: Int, device: String, _ bytes: [UInt8]) -> String {
        let key = "\(target)/\(device)"
        var b = buffers[key, default: []]
        b += bytes
        let text = String(decoding: b, as: UTF8.self)
        if b.count > Self.tail { b.removeFirst(b.count - Self.tail) }
        buffers[key] = b
        return text
    }
}
