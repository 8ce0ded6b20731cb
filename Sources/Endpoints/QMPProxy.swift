import NIOCore
import NIOPosix
import QMP
#if canImport(Glibc)
import Glibc
#endif

/// A QMP socket any number of clients (qemu.qmp, qmp-shell, socat) use at
/// once, alongside vtarget itself. QEMU's monitor takes one client, so all
/// traffic goes through vtarget's single `QMPClient`: each client gets its
/// own greeting and negotiation, replies carry the client's own ids and go
/// to that client only, in the order it asked, and events go to every
/// negotiated client. Confined to one event loop.
public final class QMPProxy: @unchecked Sendable {
    public let loop: any EventLoop
    private let qmp: QMPClient
    private var server: (any Channel)?
    private(set) var clients: [ObjectIdentifier: ClientState] = [:]

    /// Touched on the loop only, as the proxy is.
    final class ClientState: @unchecked Sendable {
        let channel: any Channel
        var negotiated = false
        var splitter = JSONStreamSplitter()
        /// What the client is owed, in the order it asked (see `ReplyQueue`).
        var replies = ReplyQueue<ByteBuffer>()
        /// Inside one read of the client's: what is written then is flushed
        /// once, when the read is over, not once per reply.
        var reading = false
        var unflushed = false
        /// The client half-closed: it ends once it has been paid.
        var endWhenPaid = false
        init(channel: any Channel) { self.channel = channel }
    }

    public init(qmp: QMPClient, loop: any EventLoop) {
        self.qmp = qmp
        self.loop = loop
    }

    public func listen(path: String) async throws {
        let channel = try await ServerBootstrap(group: loop)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(ClientHandler(proxy: self)) }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).get()
        try await loop.submit { self.server = channel }.get()
        chmod(path, 0o600)
    }

    /// Clients attached now, for idleTTL.
    public func clientCount() async -> Int {
        (try? await loop.submit { self.clients.count }.get()) ?? 0
    }

    /// An event from QEMU, for every client that has negotiated.
    public func broadcast(_ event: JSONValue) {
        let bytes = event.serialized() + [0x0D, 0x0A]
        loop.execute {
            for c in self.clients.values where c.negotiated { c.channel.writeAndFlush(bytes: bytes) }
        }
    }

    /// Stops listening and ends every client: QEMU is gone or going.
    public func close() async {
        let channels: [any Channel] = (try? await loop.submit {
            let all = self.clients.values.map(\.channel) + [self.server].compactMap { $0 }
            self.clients = [:]
            return all
        }.get()) ?? []
        for c in channels { try? await c.close() }
    }

    // MARK: on the loop

    fileprivate func joined(_ channel: any Channel) {
        clients[ObjectIdentifier(channel)] = ClientState(channel: channel)
        // QEMU's greeting, without out-of-band capability: the proxy does not offer it.
        var greeting: [String: JSONValue] = ["capabilities": .array([])]
        if let v = qmp.greeting?["QMP"]?["version"] { greeting["version"] = v }
        channel.writeAndFlush(bytes: JSONValue.object(["QMP": .object(greeting)]).serialized() + [0x0D, 0x0A])
    }

    fileprivate func left(_ channel: any Channel) {
        clients.removeValue(forKey: ObjectIdentifier(channel))
    }

    fileprivate func received(_ buffer: ByteBuffer, from channel: any Channel) {
        guard let c = clients[ObjectIdentifier(channel)] else { return }
        c.reading = true
        let split = c.splitter.append(buffer.readableBytesView)
        for text in split.messages { handle(text, c) }
        if split.failure != nil {
            answer(c, nil, .failure(.command(errorClass: "GenericError", description: "JSON parse error, invalid QMP input")))
        }
    }

    /// The end of a read: one flush for every reply written during it.
    fileprivate func readEnded(_ channel: any Channel) {
        guard let c = clients[ObjectIdentifier(channel)] else { return }
        c.reading = false
        if c.unflushed {
            c.unflushed = false
            channel.flush()
        }
    }

    fileprivate func inputClosed(_ channel: any Channel) {
        // A client that half-closed still gets the replies it is owed, then the end.
        guard let c = clients[ObjectIdentifier(channel)] else { return }
        c.endWhenPaid = true
        if c.replies.isEmpty { end(c) }
    }

    private func handle(_ text: [UInt8], _ c: ClientState) {
        guard let message = try? JSONValue.parse(text) else {
            return answer(c, nil, .failure(.command(errorClass: "GenericError", description: "JSON parse error")))
        }
        let id = message["id"]
        guard case .object(let fields) = message, let command = fields["execute"]?.stringValue else {
            return answer(c, id, .failure(.command(errorClass: "GenericError", description: "QMP input must be a JSON object with \"execute\"")))
        }
        for key in fields.keys {
            switch key {
            case "execute", "arguments", "id": continue
            default: return answer(c, id, .failure(.command(errorClass: "GenericError", description: "QMP input member '\(key)' is unexpected")))
            }
        }
        if command == "qmp_capabilities" {
            if c.negotiated {
                return answer(c, id, .failure(.command(errorClass: "CommandNotFound", description: "Capabilities negotiation is already complete, command ignored")))
            }
            c.negotiated = true
            return answer(c, id, .success(.object([:])))
        }
        guard c.negotiated else {
            return answer(c, id, .failure(.command(errorClass: "CommandNotFound", description: "Expecting capabilities negotiation with 'qmp_capabilities'")))
        }
        // The reply's place is taken now, so replies keep request order
        // however QEMU (or the query cache) completes them.
        let ticket = c.replies.owe()
        let loop = self.loop
        qmp.send(command, arguments: fields["arguments"]) { result in
            // Normally on the loop already (QEMU's channel shares it): no hop, no task.
            if loop.inEventLoop {
                self.pay(c, ticket, Self.reply(c.channel.allocator, id, result))
            } else {
                loop.execute { self.pay(c, ticket, Self.reply(c.channel.allocator, id, result)) }
            }
        }
    }

    /// A reply made here, at once, in its place among those owed.
    private func answer(_ c: ClientState, _ id: JSONValue?, _ result: Result<JSONValue, QMPError>) {
        pay(c, c.replies.owe(), Self.reply(c.channel.allocator, id, result))
    }

    /// Fills reply `ticket` and writes every reply now due, in order; flushed
    /// at once, or at the end of the client's read when inside one.
    private func pay(_ c: ClientState, _ ticket: Int, _ reply: ByteBuffer) {
        let due = c.replies.fill(ticket, with: reply)
        for r in due { c.channel.write(r, promise: nil) }
        if !due.isEmpty {
            if c.reading { c.unflushed = true } else { c.channel.flush() }
        }
        if c.endWhenPaid, c.replies.isEmpty { end(c) }
    }

    private func end(_ c: ClientState) {
        c.channel.flush()
        c.channel.close(promise: nil)
    }

    /// `{"return": …, "id": …}` or `{"error": {"class": …, "desc": …}, "id": …}`,
    /// written straight into the buffer that goes out (QEMU's key order).
    static func reply(_ allocator: ByteBufferAllocator, _ id: JSONValue?, _ result: Result<JSONValue, QMPError>) -> ByteBuffer {
        var out: [UInt8] = []
        out.reserveCapacity(96)
        switch result {
        case .success(let r):
            out += #"{"return": "#.utf8
            out += r.serialized()
        case .failure(let e):
            let (cls, desc): (String, String)
            switch e {
            case .command(let c, let d): (cls, desc) = (c, d)
            default: (cls, desc) = ("GenericError", e.description)
            }
            out += #"{"error": {"class": "#.utf8
            out += JSONValue.string(cls).serialized()
            out += #", "desc": "#.utf8
            out += JSONValue.string(desc).serialized()
            out.append(UInt8(ascii: "}"))
        }
        if let id {
            out += #", "id": "#.utf8
            out += id.serialized()
        }
        out += [UInt8(ascii: "}"), 0x0D, 0x0A]
        var buffer = allocator.buffer(capacity: out.count)
        buffer.writeBytes(out)
        return buffer
    }

    final class ClientHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let proxy: QMPProxy
        init(proxy: QMPProxy) { self.proxy = proxy }
        func channelActive(context: ChannelHandlerContext) { proxy.joined(context.channel) }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { proxy.received(unwrapInboundIn(data), from: context.channel) }
        func channelReadComplete(context: ChannelHandlerContext) { proxy.readEnded(context.channel) }
        func channelInactive(context: ChannelHandlerContext) { proxy.left(context.channel) }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event as? ChannelEvent == .inputClosed { proxy.inputClosed(context.channel) }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
