import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// One UART shared by many: QEMU's end of the socket pair on one side, any
/// number of unix-socket clients on the other. Every client reads all output
/// (late joiners get the last 64 KiB first); what clients write goes to the
/// UART. Confined to one event loop: all state is touched there only.
public final class SerialHub: @unchecked Sendable {
    public let name: String
    public let loop: any EventLoop
    /// Per-client bytes queued before a client that stops reading is dropped.
    public static let clientHighWater = 1 << 20

    private var qemu: (any Channel)?
    private var server: (any Channel)?
    private var clients: [ObjectIdentifier: any Channel] = [:]
    private var replay = ReplayBuffer()
    private let onOutput: @Sendable ([UInt8]) -> Void
    private let onClosed: @Sendable () -> Void

    /// `onOutput` sees every byte the UART sends, in order, on the loop.
    public init(name: String, loop: any EventLoop, onOutput: @escaping @Sendable ([UInt8]) -> Void,
                onClosed: @escaping @Sendable () -> Void = {}) {
        self.name = name
        self.loop = loop
        self.onOutput = onOutput
        self.onClosed = onClosed
    }

    /// Takes over our end of the socket pair whose other end QEMU has.
    public func attach(fd: Int32) async throws {
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(UARTSide(hub: self)) }
            }
            .withConnectedSocket(fd).get()
        try await loop.submit { self.qemu = channel }.get()
    }

    /// Serves the UART on a unix socket at `path`.
    public func listen(path: String) async throws {
        let channel = try await ServerBootstrap(group: loop)
            // `printf … | socat` half-closes after sending; it must still get the reply.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: Self.clientHighWater / 2, high: Self.clientHighWater))
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(ClientSide(hub: self)) }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).get()
        try await loop.submit { self.server = channel }.get()
        chmod(path, 0o600)  // connecting needs write permission: the user's only
    }

    /// Bytes to the UART, as if typed.
    public func send(_ bytes: [UInt8]) {
        loop.execute {
            guard let q = self.qemu else { return }
            var b = q.allocator.buffer(capacity: bytes.count)
            b.writeBytes(bytes)
            q.writeAndFlush(b, promise: nil)
        }
    }

    public var clientCount: Int {
        get async { (try? await loop.submit { self.clients.count }.get()) ?? 0 }
    }

    /// Closes the listener, every client and the UART side.
    public func close() async {
        let channels: [any Channel] = (try? await loop.submit {
            let all = Array(self.clients.values) + [self.server, self.qemu].compactMap { $0 }
            self.clients = [:]
            return all
        }.get()) ?? []
        for c in channels { try? await c.close() }
    }

    // MARK: on the loop

    fileprivate func fromUART(_ buffer: ByteBuffer) {
        let bytes = Array(buffer.readableBytesView)
        replay.append(bytes)
        onOutput(bytes)
        for (id, c) in clients {
            c.writeAndFlush(buffer, promise: nil)
            if !c.isWritable {
                clients.removeValue(forKey: id)
                var note = c.allocator.buffer(capacity: 80)
                note.writeString("\r\nvtarget: \(name): dropped, this client stopped reading\r\n")
                c.writeAndFlush(note, promise: nil)
                c.close(promise: nil)
            }
        }
    }

    fileprivate func uartClosed() {
        qemu = nil
        for c in clients.values { c.close(promise: nil) }
        clients = [:]
        onClosed()
    }

    fileprivate func joined(_ channel: any Channel) {
        let past = replay.contents
        if !past.isEmpty {
            var b = channel.allocator.buffer(capacity: past.count)
            b.writeBytes(past)
            channel.writeAndFlush(b, promise: nil)
        }
        clients[ObjectIdentifier(channel)] = channel
    }

    fileprivate func left(_ channel: any Channel) {
        clients.removeValue(forKey: ObjectIdentifier(channel))
    }

    fileprivate func fromClient(_ buffer: ByteBuffer) {
        qemu?.writeAndFlush(buffer, promise: nil)
    }

    private final class UARTSide: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let hub: SerialHub
        init(hub: SerialHub) { self.hub = hub }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { hub.fromUART(unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) { hub.uartClosed() }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    private final class ClientSide: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let hub: SerialHub
        init(hub: SerialHub) { self.hub = hub }
        func channelActive(context: ChannelHandlerContext) { hub.joined(context.channel) }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { hub.fromClient(unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) { hub.left(context.channel) }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
