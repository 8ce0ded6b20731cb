import NIOCore
import NIOEmbedded

extension NIOAsyncTestingChannel {
    /// A channel with `handlers`, connected to nowhere in particular: the
    /// endpoints' handlers start their work in `channelActive`, as on a socket.
    static func connected(_ handlers: [any ChannelHandler & Sendable], on loop: NIOAsyncTestingEventLoop) async throws -> NIOAsyncTestingChannel {
        let channel = await NIOAsyncTestingChannel(handlers: handlers, loop: loop)
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        return channel
    }
}
