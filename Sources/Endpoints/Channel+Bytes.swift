import NIOCore

extension Channel {
    /// `bytes` in a buffer of their own, written and flushed: the endpoints'
    /// short protocol messages (QMP replies, socketcand lines, SLCAN frames).
    func writeAndFlush(bytes: [UInt8]) {
        var b = allocator.buffer(capacity: bytes.count)
        b.writeBytes(bytes)
        writeAndFlush(b, promise: nil)
    }
}
