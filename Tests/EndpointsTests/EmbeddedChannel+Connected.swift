import NIOCore
import NIOEmbedded

extension EmbeddedChannel {
    /// A channel with `handlers`, connected to nowhere in particular: the
    /// endpoints' handlers start their work in `channelActive`, as on a socket.
    static func connected(_ handlers: [any ChannelHandler], on loop: EmbeddedEventLoop) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handlers: handlers, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    /// The writes that reached the socket since last asked, one string per write.
    func writes() throws -> [String] {
        var out: [String] = []
        while let b = try readOutbound(as: ByteBuffer.self) { out.append(String(buffer: b)) }
        return out
    }
}
