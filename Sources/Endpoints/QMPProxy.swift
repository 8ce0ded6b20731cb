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

    final class ClientState {
        let channel: any Channel
        var negotiated = false
        var splitter = JSONStreamSplitter()
        /// Completes when this client's previous reply has been written: replies keep request order.
        var lastReply: EventLoopFuture<Void>
        init(channel: any Channel) {
            self.channel = channel
            self.lastReply = channel.eventLoop.makeSucceededVoidFuture()
        }
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
        let split = c.splitter.append(buffer.readableBytesView)
        for text in split.messages { handle(text, c) }
        if split.failure != nil {
            reply(c, nil, .failure(.command(errorClass: "GenericError", description: "JSON parse error, invalid QMP input")))
        }
    }

    private func handle(_ text: [UInt8], _ c: ClientState) {
        guard let message = try? JSONValue.parse(text) else {
            return reply(c, nil, .failure(.command(errorClass: "GenericError", description: "JSON parse error")))
        }
        let id = message["id"]
        guard case .object(let fields) = message, let command = fields["execute"]?.stringValue else {
            return reply(c, id, .failure(.command(errorClass: "GenericError", description: "QMP input must be a JSON object with \"execute\"")))
        }
        if let extra = fields.keys.first(where: { !["execute", "arguments", "id"].contains($0) }) {
            return reply(c, id, .failure(.command(errorClass: "GenericError", description: "QMP input member '\(extra)' is unexpected")))
        }
        if command == "qmp_capabilities" {
            if c.negotiated {
                return reply(c, id, .failure(.command(errorClass: "CommandNotFound", description: "Capabilities negotiation is already complete, command ignored")))
            }
            c.negotiated = true
            return reply(c, id, .success(.object([:])))
        }
        guard c.negotiated else {
            return reply(c, id, .failure(.command(errorClass: "CommandNotFound", description: "Expecting capabilities negotiation with 'qmp_capabilities'")))
        }
        let promise = loop.makePromise(of: Result<JSONValue, QMPError>.self)
        qmp.send(command, arguments: fields["arguments"]) { promise.succeed($0) }
        // Write in request order even when replies complete out of order.
        c.lastReply = c.lastReply.flatMap { promise.futureResult }.map { result in
            self.write(c, id, result)
        }
    }

    private func reply(_ c: ClientState, _ id: JSONValue?, _ result: Result<JSONValue, QMPError>) {
        c.lastReply = c.lastReply.map { self.write(c, id, result) }
    }

    private func write(_ c: ClientState, _ id: JSONValue?, _ result: Result<JSONValue, QMPError>) {
        var object: [String: JSONValue]
        switch result {
        case .success(let r): object = ["return": r]
        case .failure(.command(let cls, let desc)): object = ["error": .object(["class": .string(cls), "desc": .string(desc)])]
        case .failure(let e): object = ["error": .object(["class": .string("GenericError"), "desc": .string(e.description)])]
        }
        if let id { object["id"] = id }
        c.channel.writeAndFlush(bytes: JSONValue.object(object).serialized() + [0x0D, 0x0A])
    }

    final class ClientHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let proxy: QMPProxy
        init(proxy: QMPProxy) { self.proxy = proxy }
        func channelActive(context: ChannelHandlerContext) { proxy.joined(context.channel) }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { proxy.received(unwrapInboundIn(data), from: context.channel) }
        func channelInactive(context: ChannelHandlerContext) { proxy.left(context.channel) }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            // A client that half-closed still gets the replies it is owed, then the end.
            if event as? ChannelEvent == .inputClosed, let c = proxy.clients[ObjectIdentifier(context.channel)] {
                c.lastReply.whenComplete { _ in context.close(promise: nil) }
            }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
