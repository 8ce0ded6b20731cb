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
    /// Set at creation; nil costs the hot path one test per line.
    private let transcript: QMPTranscript?
    private var server: (any Channel)?
    private(set) var clients: [ObjectIdentifier: ClientState] = [:]
    /// Numbers clients for the transcript, from 1.
    private var joins = 0
    /// Clients paid during one read of QEMU's, flushed once when it is over.
    private var paidUnflushed: [ClientState] = []
    /// The commands vtarget answers itself instead of QEMU, looked up by
    /// name per command (see `LocalCommand`): which they are can change with
    /// vtarget's state.
    private let local: (@Sendable (String) -> LocalCommand?)?

    /// A command the proxy runs in vtarget, for behaviour QEMU has no one
    /// command for (a soft reboot is several, and an event in between), or
    /// that must see a client's command before QEMU does. Its name follows
    /// QMP's rule for downstream extensions (`__dev.vtarget_NAME`) where it
    /// is vtarget's own; it replies as QEMU would, with `return` or `error`.
    public typealias LocalCommand = @Sendable (_ arguments: JSONValue?) async -> Result<JSONValue, QMPError>

    /// Touched on the loop only, as the proxy is.
    final class ClientState: @unchecked Sendable {
        let channel: any Channel
        /// The client's number in the transcript.
        let number: Int
        var negotiated = false
        var splitter = JSONStreamSplitter()
        /// What the client is owed, in the order it asked (see `ReplyQueue`).
        var replies = ReplyQueue<ByteBuffer>()
        /// Inside one read of the client's: what is written then is flushed
        /// once, when the read is over, not once per reply.
        var reading = false
        var unflushed = false
        /// Commands written to QEMU during this read, flushed once when it ends.
        var forwarded = false
        /// The client half-closed: it ends once it has been paid.
        var endWhenPaid = false
        init(channel: any Channel, number: Int) {
            self.channel = channel
            self.number = number
        }
    }

    /// `transcript` hears every line of the conversation (see `QMPTranscript`);
    /// `local` finds the commands vtarget answers itself, by name.
    public init(qmp: QMPClient, loop: any EventLoop, transcript: QMPTranscript? = nil,
                local: (@Sendable (String) -> LocalCommand?)? = nil) {
        self.qmp = qmp
        self.loop = loop
        self.transcript = transcript
        self.local = local
        qmp.onReadComplete { [weak self] in self?.qemuReadEnded() }
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
            if let transcript = self.transcript {
                var line = ByteBuffer(bytes: bytes)
                line.moveWriterIndex(to: line.writerIndex - 2)
                transcript(nil, .event, line, .now())
            }
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
        joins += 1
        let c = ClientState(channel: channel, number: joins)
        clients[ObjectIdentifier(channel)] = c
        // QEMU's greeting, without out-of-band capability: the proxy does not offer it.
        var greeting: [String: JSONValue] = ["capabilities": .array([])]
        if let v = qmp.greeting?["QMP"]?["version"] { greeting["version"] = v }
        let bytes = JSONValue.object(["QMP": .object(greeting)]).serialized() + [0x0D, 0x0A]
        if let transcript { transcript(c.number, .fromQEMU, ByteBuffer(bytes: bytes.dropLast(2)), .now()) }
        channel.writeAndFlush(bytes: bytes)
    }

    fileprivate func left(_ channel: any Channel) {
        clients.removeValue(forKey: ObjectIdentifier(channel))
    }

    fileprivate func received(_ buffer: ByteBuffer, from channel: any Channel) {
        guard let c = clients[ObjectIdentifier(channel)] else { return }
        c.reading = true
        let split = c.splitter.append(buffer.readableBytesView)
        for text in split.messages {
            if let transcript { transcript(c.number, .toQEMU, ByteBuffer(bytes: text), .now()) }
            handle(text, c)
        }
        if split.failure != nil {
            answer(c, nil, .failure(.command(errorClass: "GenericError", description: "JSON parse error, invalid QMP input")))
        }
    }

    /// The end of a client's read: one flush toward QEMU for every command
    /// forwarded during it, one flush for every reply written during it.
    fileprivate func readEnded(_ channel: any Channel) {
        guard let c = clients[ObjectIdentifier(channel)] else { return }
        c.reading = false
        if c.forwarded {
            c.forwarded = false
            qmp.flush()
        }
        if c.unflushed {
            c.unflushed = false
            channel.flush()
        }
    }

    /// The end of a read of QEMU's: one flush per client its replies paid.
    private func qemuReadEnded() {
        guard loop.inEventLoop, !paidUnflushed.isEmpty else { return }
        let paid = paidUnflushed
        paidUnflushed = []
        for c in paid where c.unflushed && !c.reading {
            c.unflushed = false
            c.channel.flush()
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
        if let run = local?(command) {
            let arguments = fields["arguments"]
            Task {
                let result = await run(arguments)
                loop.execute { self.pay(c, ticket, Self.reply(c.channel.allocator, id, result)) }
            }
            return
        }
        c.forwarded = true
        qmp.send(command, arguments: fields["arguments"], flush: false) { result in
            // Normally on the loop already (QEMU's channel shares it): no hop, no
            // task, and the flush waits for the end of QEMU's read.
            if loop.inEventLoop {
                self.pay(c, ticket, Self.reply(c.channel.allocator, id, result), atReadEnd: true)
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
    /// at the end of the client's read when inside one, else, while the
    /// client is owed more (a pipelined burst), at the end of QEMU's read
    /// (`atReadEnd`), else at once. Holding the last reply owed too was
    /// measured: ~100 µs more per forwarded round trip (debug build).
    private func pay(_ c: ClientState, _ ticket: Int, _ reply: ByteBuffer, atReadEnd: Bool = false) {
        let due = c.replies.fill(ticket, with: reply)
        for r in due {
            if let transcript { transcript(c.number, .fromQEMU, r.getSlice(at: r.readerIndex, length: r.readableBytes - 2) ?? r, .now()) }
            c.channel.write(r, promise: nil)
        }
        if !due.isEmpty {
            if c.reading {
                c.unflushed = true
            } else if atReadEnd, !c.replies.isEmpty {
                if !c.unflushed {
                    c.unflushed = true
                    paidUnflushed.append(c)
                }
            } else {
                c.channel.flush()
            }
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

/// Which way a transcript line went: a client's line (toward QEMU, whether
/// QEMU or the proxy answers it), a line a client received (QEMU's reply
/// with the client's own id, the proxy's own answers and greeting), or an
/// event (once, for every client).
public enum QMPTranscriptDirection: Sendable, Equatable {
    case toQEMU, fromQEMU, event
}

/// Hears the proxy's conversation, for a recording's QMP transcript: the
/// client's number (from 1, in order of connection; nil for an event), the
/// direction, the JSON text exactly as the client sent or received it
/// (without its line ending), and when (monotonic). Called on the proxy's
/// event loop, in the order the lines were sent and received; it must not block.
public typealias QMPTranscript = @Sendable (_ client: Int?, _ direction: QMPTranscriptDirection, _ line: ByteBuffer, _ at: NIODeadline) -> Void
