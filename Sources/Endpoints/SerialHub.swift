import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// One UART shared by many: QEMU's FIFOs on one side, any
/// number of unix-socket clients on the other. Every client reads all output
/// (late joiners get the last 64 KiB first). One client writes at a time:
/// the first to write holds the UART until it leaves; others' bytes are
/// dropped with a notice, unless they connect to the force socket, which
/// takes over. Confined to one event loop: all state is touched there only.
public final class SerialHub: @unchecked Sendable {
    public let name: String
    public let loop: any EventLoop
    /// Per-client bytes queued before a client that stops reading is dropped.
    public static let clientHighWater = 1 << 20

    /// Internal, not private: unit tests put an embedded channel here instead of the FIFOs.
    var qemu: (any Channel)?
    private var server: (any Channel)?
    private(set) var clients: [ObjectIdentifier: any Channel] = [:]
    private var forceServer: (any Channel)?
    private var tcpServer: (any Channel)?
    private var writer: ObjectIdentifier?
    private var warnedReadOnly: Set<ObjectIdentifier> = []
    private(set) var replay = ReplayBuffer()
    private var log: SerialLog?
    /// Set while QEMU records: input goes one byte at a time (`PacedInput` says why).
    var paced: PacedInput?  // internal: unit tests set it on their loop
    private let onOutput: @Sendable ([UInt8]) -> Void
    /// Hears every piece of input as it is written to the UART (after
    /// pacing); nil, the usual case, costs one check per write.
    var onInput: (@Sendable ([UInt8]) -> Void)?  // internal: unit tests set it on their loop
    private let onClosed: @Sendable () -> Void
    private let report: @Sendable (String) -> Void

    /// `onOutput` sees every byte the UART sends, in order, on the loop;
    /// `report` hears what vtarget's user should know (a dropped client).
    public init(name: String, loop: any EventLoop, onOutput: @escaping @Sendable ([UInt8]) -> Void,
                onClosed: @escaping @Sendable () -> Void = {}, report: @escaping @Sendable (String) -> Void = { _ in }) {
        self.name = name
        self.loop = loop
        self.onOutput = onOutput
        self.onClosed = onClosed
        self.report = report
    }

    /// Takes over vtarget's ends of the UART's FIFOs: `input` carries what
    /// the guest sends, `output` what it receives.
    public func attach(input: Int32, output: Int32) async throws {
        let channel = try await NIOPipeBootstrap(group: loop)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(UARTSide(hub: self)) }
            }
            .takingOwnershipOfDescriptors(input: input, output: output).get()
        try await loop.submit { self.qemu = channel }.get()
    }

    /// Keeps every byte in `log` from now on.
    public func record(to log: SerialLog) async throws {
        try await loop.submit { self.log = log }.get()
    }

    /// Serves the UART on a unix socket at `path`; a client of `forcePath`
    /// takes write access from whoever holds it.
    public func listen(path: String, forcePath: String) async throws {
        let plain = try await bind(path, force: false)
        let force = try await bind(forcePath, force: true)
        try await loop.submit {
            self.server = plain
            self.forceServer = force
        }.get()
    }

    /// Serves the UART over loopback TCP with RFC 2217 (pyserial's
    /// `rfc2217://`, labgrid's NetworkSerialPort); port 0 picks a free one.
    /// Returns the port.
    public func listenRFC2217(port: Int) async throws -> Int {
        let channel = try await ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: Self.clientHighWater / 2, high: Self.clientHighWater))
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(RFC2217Handler())
                    try ch.pipeline.syncOperations.addHandler(ClientSide(hub: self, force: false))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        try await loop.submit { self.tcpServer = channel }.get()
        return channel.localAddress?.port ?? port
    }

    private func bind(_ path: String, force: Bool) async throws -> any Channel {
        let channel = try await ServerBootstrap(group: loop)
            // `printf … | socat` half-closes after sending; it must still get the reply.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: Self.clientHighWater / 2, high: Self.clientHighWater))
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(ClientSide(hub: self, force: force)) }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).get()
        chmod(path, 0o600)  // connecting needs write permission: the user's only
        return channel
    }

    /// Bytes to the UART, as if typed.
    public func send(_ bytes: [UInt8]) {
        loop.execute { self.toUART(bytes, from: nil) }
    }

    /// From now on input reaches the UART one byte per `gap` (QEMU records the run).
    public func paceInput(gap: TimeAmount) async throws {
        try await loop.submit {
            self.paced = PacedInput(loop: self.loop, gap: gap) { [weak self] in self?.writeToUART($0) }
        }.get()
    }

    /// From now on `observer` hears, on the loop, every piece of input at
    /// the moment it is written to the UART: whoever typed it (a client, the
    /// force socket, RFC 2217, vtarget's own `send`), once paced input let
    /// it go. A recording keeps it as the serial input trace.
    public func observeInput(_ observer: @escaping @Sendable ([UInt8]) -> Void) async throws {
        try await loop.submit { self.onInput = observer }.get()
    }

    /// Returns once paced input queued so far has gone to the UART.
    public func inputDrained() async {
        try? await loop.flatSubmit { self.paced?.drained() ?? self.loop.makeSucceededVoidFuture() }.get()
    }

    private func toUART(_ bytes: [UInt8], from channel: (any Channel)?) {
        if let paced { paced.enqueue(bytes, from: channel) } else { writeToUART(bytes) }
    }

    /// The one place input is written to QEMU; not written (no UART), not heard.
    func writeToUART(_ bytes: [UInt8]) {  // internal: unit tests pace into it
        guard let qemu else { return }
        qemu.writeAndFlush(bytes: bytes)
        onInput?(bytes)
    }

    /// A pool member handed back: the next claimer sees none of the previous
    /// one's session (no replay of it, no client of it left attached).
    public func reset() async {
        let old = (try? await loop.submit { self.endSession() }.get()) ?? []
        for c in old { try? await c.close() }
    }

    /// `reset()`'s part on the loop (unit tests on an embedded loop call it
    /// directly): returns the session's clients, for the caller to close.
    func endSession() -> [any Channel] {
        replay = ReplayBuffer(capacity: replay.capacity)
        burst.removeAll()  // output still waiting for its batch was the previous session's too
        paced?.reset()
        writer = nil
        warnedReadOnly = []
        defer { clients = [:] }
        return Array(clients.values)
    }

    /// Clients attached now (unix and RFC 2217), for idleTTL.
    public func clientCount() async -> Int {
        (try? await loop.submit { self.clients.count }.get()) ?? 0
    }

    /// The last 64 KiB the UART sent.
    public func recentOutput() async -> [UInt8] {
        (try? await loop.submit { self.replay.contents }.get()) ?? []
    }

    /// Closes the listener, every client and the UART side.
    public func close() async {
        let channels: [any Channel] = (try? await loop.submit {
            let all = Array(self.clients.values) + [self.server, self.forceServer, self.tcpServer, self.qemu].compactMap { $0 }
            self.clients = [:]
            self.paced?.reset()
            self.log?.close()
            self.log = nil
            return all
        }.get()) ?? []
        for c in channels { try? await c.close() }
    }

    // MARK: on the loop

    /// Output read from the UART and not yet handed on.
    private var burst: [UInt8] = []
    /// On the loop's clock (the real one on a real loop), so a test's loop can step it.
    private var lastHandOff = NIODeadline.distantPast
    /// Set while output waits for its batch; reading the UART waits with it.
    private var scheduledHandOff: Scheduled<Void>?
    private var readHeld: (() -> Void)?

    /// How long output may wait to be handed on with what follows it. Each
    /// hand-off costs a write per client, so with many readers a fast stream
    /// goes in batches (at most one per window, the UART unread meanwhile so
    /// its bytes pile up in the FIFO instead of waking vtarget one read at a
    /// time). A lone client, or output after a pause as long as the window,
    /// goes at once: an interactive session never waits.
    static func batchWindow(clients: Int) -> TimeAmount {
        .microseconds(Int64(min(1000, 64 * max(0, clients - 1))))
    }

    fileprivate func fromUART(_ buffer: ByteBuffer) {
        burst += buffer.readableBytesView
    }

    /// The end of a read burst: hand on now, or at the end of the window.
    fileprivate func burstEnded() {
        guard !burst.isEmpty, scheduledHandOff == nil else { return }
        let due = lastHandOff + Self.batchWindow(clients: clients.count)
        if due <= loop.now { return handOff() }
        scheduledHandOff = loop.scheduleTask(deadline: due) {
            self.scheduledHandOff = nil
            self.handOff()
            self.readHeld.take()?()
        }
    }

    /// Whether the UART may be read now; else `read` runs after the batch goes.
    fileprivate func mayRead(_ read: @escaping () -> Void) -> Bool {
        guard scheduledHandOff != nil else { return true }
        readHeld = read
        return false
    }

    /// One write and flush per client, one log write, one hand-off, however
    /// many small reads QEMU's byte-at-a-time writes made.
    private func handOff() {
        guard !burst.isEmpty else { return }
        lastHandOff = loop.now
        let bytes = burst
        burst.removeAll(keepingCapacity: true)
        // Clients first: the log and the hand-off are not what anyone waits on.
        defer {
            replay.append(bytes)
            log?.append(bytes)
            onOutput(bytes)
        }
        guard let allocator = clients.first?.value.allocator else { return }
        var out = allocator.buffer(capacity: bytes.count)
        out.writeBytes(bytes)
        for (id, c) in clients {
            c.writeAndFlush(out, promise: nil)
            if !c.isWritable {
                // A notice in-band would queue behind the 1 MiB it never read:
                // the client gets EOF, vtarget's user gets the message.
                clients.removeValue(forKey: id)
                if writer == id { writer = nil }
                c.close(promise: nil)
                report("\(name): dropped a client that stopped reading (\(Self.clientHighWater >> 10) KiB queued)")
            }
        }
    }

    fileprivate func uartClosed() {
        scheduledHandOff?.cancel()
        scheduledHandOff = nil
        handOff()
        paced?.reset()
        qemu = nil
        for c in clients.values { c.close(promise: nil) }
        clients = [:]
        onClosed()
    }

    fileprivate func joined(_ channel: any Channel, force: Bool) {
        let past = replay.contents
        if !past.isEmpty { channel.writeAndFlush(bytes: past) }
        let id = ObjectIdentifier(channel)
        clients[id] = channel
        if force {
            if let old = writer, old != id, let c = clients[old] {
                notice(c, "write access was taken over by another client (--force); you are read-only now")
                warnedReadOnly.insert(old)
            }
            writer = id
        }
    }

    fileprivate func left(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        clients.removeValue(forKey: id)
        warnedReadOnly.remove(id)
        if writer == id { writer = nil }
    }

    fileprivate func fromClient(_ buffer: ByteBuffer, _ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        if writer == nil { writer = id }
        guard writer == id else {
            if warnedReadOnly.insert(id).inserted {
                notice(channel, "read-only: another client is writing; connect to \(name).force.sock (vtarget console --force) to take over")
            }
            return
        }
        if let paced {
            paced.enqueue(buffer.readableBytesView, from: channel)
        } else if let onInput, let qemu {
            qemu.writeAndFlush(buffer, promise: nil)
            onInput(Array(buffer.readableBytesView))
        } else {
            qemu?.writeAndFlush(buffer, promise: nil)
        }
    }

    private func notice(_ channel: any Channel, _ text: String) {
        channel.writeAndFlush(bytes: Array("\r\nvtarget: \(name): \(text)\r\n".utf8))
    }

    final class UARTSide: ChannelDuplexHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer
        let hub: SerialHub
        init(hub: SerialHub) { self.hub = hub }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { hub.fromUART(unwrapInboundIn(data)) }
        func channelReadComplete(context: ChannelHandlerContext) { hub.burstEnded() }
        func read(context: ChannelHandlerContext) {
            if hub.mayRead({ context.read() }) { context.read() }
        }
        func channelInactive(context: ChannelHandlerContext) { hub.uartClosed() }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    final class ClientSide: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let hub: SerialHub
        let force: Bool
        init(hub: SerialHub, force: Bool) {
            self.hub = hub
            self.force = force
        }
        func channelActive(context: ChannelHandlerContext) { hub.joined(context.channel, force: force) }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { hub.fromClient(unwrapInboundIn(data), context.channel) }
        func channelInactive(context: ChannelHandlerContext) { hub.left(context.channel) }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
