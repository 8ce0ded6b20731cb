import CANProtocol
import NIOCore
import NIOPosix

/// A target's CAN device on a bus: SLCAN lines on one of its UARTs on one
/// side, a socketcand connection to the bus host on the other. The bus is a
/// process of its own, so targets of different runs and supervised
/// instances share it by name. Confined to one event loop.
public final class CANBusLink: @unchecked Sendable {
    public let member: String
    public let loop: any EventLoop
    private let busName: String
    private let faults: [String: String]
    private var bus: (any Channel)?
    private var uart: (any Channel)?
    private var leaving = false
    private let onLost: @Sendable (String) -> Void
    /// Finds the bus host again (starting one), for rejoining after it went away.
    private let rediscover: @Sendable () async throws -> String
    private var rejoining: Task<Void, Never>?
    /// Hears every frame this device passes on (a recording's CAN trace);
    /// nil, the usual case, costs one check per frame.
    private var onFrame: (@Sendable (CANFrame, Direction) -> Void)?

    /// Set while QEMU records: the bus's frames go to the UART one byte per
    /// gap, as serial input does (`PacedInput` says why).
    private var paced: PacedInput?
    /// Frames queued in `paced`, each with the count of paced bytes written
    /// once its last byte is: it reached the board then, and is heard then.
    private var pacedFrames: [(frame: CANFrame, end: Int)] = []
    private var pacedQueued = 0
    private var pacedWritten = 0
    private var pacedDropped = 0
    /// Frames waiting for a recorded UART past this are dropped (as a real
    /// SLCAN adapter overruns): at 150 ms a byte, 64 frames are two minutes behind.
    static let pacedFrameLimit = 64

    /// Which way a frame went, from the target's side.
    public enum Direction: Sendable, Equatable {
        /// The target sent it, and it went to the bus.
        case sent
        /// The bus delivered it, and it was written to the target's UART.
        case received
    }

    private init(member: String, bus: String, faults: [String: String], loop: any EventLoop,
                 onLost: @escaping @Sendable (String) -> Void, rediscover: @escaping @Sendable () async throws -> String) {
        self.member = member
        self.busName = bus
        self.faults = faults
        self.loop = loop
        self.onLost = onLost
        self.rediscover = rediscover
    }

    public struct JoinError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Connects to the bus host at `socketPath` (or `tcp://HOST:PORT`, a bus served elsewhere) and joins as `member` (the
    /// faults, if any, as `< vtarget-fault >` settings). Fails, with nothing
    /// left open, when the host goes away first (it may be taking itself down).
    /// Should the host go away later, the link rejoins through `rediscover`;
    /// `onLost` hears about it.
    public static func join(
        socketPath: String, bus: String, member: String, faults: [String: String], loop: any EventLoop,
        onLost: @escaping @Sendable (String) -> Void, rediscover: @escaping @Sendable () async throws -> String
    ) async throws -> CANBusLink {
        let link = CANBusLink(member: member, bus: bus, faults: faults, loop: loop, onLost: onLost, rediscover: rediscover)
        try await link.connectBus(socketPath)
        return link
    }

    /// One connection to the host: the socketcand handshake, then this link's faults.
    private func connectBus(_ socketPath: String) async throws {
        let ready = loop.makePromise(of: Void.self)
        let channel: any Channel
        do {
            let bootstrap = ClientBootstrap(group: loop)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(BusSide(link: self, bus: self.busName, ready: ready)) }
                }
            if socketPath.hasPrefix("tcp://"), let colon = socketPath.lastIndex(of: ":"), let port = Int(socketPath[socketPath.index(after: colon)...]) {
                channel = try await bootstrap.connect(host: String(socketPath[socketPath.index(socketPath.startIndex, offsetBy: 6)..<colon]), port: port).get()
            } else {
                channel = try await bootstrap.connect(unixDomainSocketPath: socketPath).get()
            }
        } catch {
            // The socket of a host that was killed: nobody listens.
            ready.fail(error)
            throw error
        }
        let timeout = loop.scheduleTask(in: .seconds(5)) { ready.fail(JoinError(description: "the bus host did not answer within 5 s")) }
        do {
            try await ready.futureResult.get()
            timeout.cancel()
        } catch {
            timeout.cancel()
            try? await channel.close()
            throw error
        }
        let faults = self.faults, member = self.member
        let stillOpen = try await loop.submit {
            guard channel.isActive, !self.leaving else { return false }
            self.bus = channel
            if !faults.isEmpty {
                let settings = ["member=\(member)"] + faults.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                channel.writeAndFlush(bytes: Array(("< vtarget-fault " + settings.joined(separator: " ") + " >").utf8))
            }
            return true
        }.get()
        if !stillOpen {
            try? await channel.close()
            throw JoinError(description: "the bus host closed the connection")
        }
    }

    /// Takes over vtarget's ends of the UART's FIFOs.
    public func attach(input: Int32, output: Int32) async throws {
        let channel = try await NIOPipeBootstrap(group: loop)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(UARTSide(link: self)) } }
            .takingOwnershipOfDescriptors(input: input, output: output).get()
        try await loop.submit { self.uart = channel }.get()
    }

    /// From now on `observer` hears, on the loop, each frame as it is passed
    /// on: to the bus when the target sent it, to the UART when the bus
    /// delivered it. Set it before `attach`, and no frame goes unheard.
    public func observeFrames(_ observer: @escaping @Sendable (CANFrame, Direction) -> Void) async throws {
        try await loop.submit { self.onFrame = observer }.get()
    }

    /// From now on frames from the bus reach the UART one byte per `gap`
    /// (QEMU records the run); set it before `attach`.
    public func paceInput(gap: TimeAmount) async throws {
        try await loop.submit {
            self.paced = PacedInput(loop: self.loop, gap: gap) { [weak self] in self?.pacedWrite($0) }
        }.get()
    }

    /// Returns once paced frames queued so far have gone to the UART.
    public func inputDrained() async {
        try? await loop.flatSubmit { self.paced?.drained() ?? self.loop.makeSucceededVoidFuture() }.get()
    }

    /// Frames (paced) still on their way to the UART; for tests.
    var framesQueued: Int { pacedFrames.count }

    /// Says goodbye and waits (at most 2 s) for the host to let go, so that
    /// when this returns a host this was the last target of has removed its
    /// files. Then closes the UART side.
    public func leave() async {
        let (bus, rejoining): ((any Channel)?, Task<Void, Never>?) = (try? await loop.submit {
            self.leaving = true
            if let b = self.bus { b.writeAndFlush(bytes: Array("< vtarget-leave >".utf8)) }
            return (self.bus, self.rejoining)
        }.get()) ?? (nil, nil)
        rejoining?.cancel()
        await rejoining?.value
        if let bus {
            let closed = bus.closeFuture
            let timer = loop.scheduleTask(in: .seconds(2)) { bus.close(promise: nil) }
            try? await closed.get()
            timer.cancel()
        }
        let uart: (any Channel)? = try? await loop.submit { self.uart }.get()
        try? await uart?.close()
    }

    // MARK: on the loop

    fileprivate func fromBus(_ frame: CANFrame) {
        guard let uart else { return }
        guard let paced else {
            uart.writeAndFlush(bytes: SLCAN.encode(frame))
            onFrame?(frame, .received)
            return
        }
        guard pacedFrames.count < Self.pacedFrameLimit else {
            pacedDropped += 1
            if pacedDropped == 1 || pacedDropped % 1000 == 0 {
                onLost("\(member): \(pacedDropped) frame(s) from the bus dropped: the recorded UART takes one byte per "
                       + "\(paced.gap.nanoseconds / 1_000_000) ms and \(Self.pacedFrameLimit) frames are waiting")
            }
            return
        }
        let bytes = SLCAN.encode(frame)
        pacedQueued += bytes.count
        pacedFrames.append((frame, pacedQueued))
        paced.enqueue(bytes, from: nil)
    }

    private func pacedWrite(_ bytes: [UInt8]) {
        guard let uart else { return }
        uart.writeAndFlush(bytes: bytes)
        pacedWritten += bytes.count
        while let first = pacedFrames.first, first.end <= pacedWritten {
            pacedFrames.removeFirst()
            onFrame?(first.frame, .received)
        }
    }

    fileprivate func fromUART(_ line: [UInt8]) {
        guard let bus else { return }
        if let frame = try? SLCAN.decode(line) {
            bus.writeAndFlush(bytes: Socketcand.sendMessage(frame))
            onFrame?(frame, .sent)
        } else {
            // An unknown command, which the host counts as malformed for this member.
            bus.writeAndFlush(bytes: Array("< vtarget-malformed >".utf8))
        }
    }

    /// The host went away (killed, say) while this target is still on the
    /// bus: find or start a host again and rejoin, as a new target would.
    fileprivate func busClosed(_ channel: any Channel) {
        guard bus === channel else { return }
        bus = nil
        guard !leaving, rejoining == nil else { return }
        onLost("\(member): the CAN bus host went away; rejoining")
        rejoining = Task {
            for attempt in 1...20 where !Task.isCancelled {
                do {
                    try await connectBus(try await rediscover())
                    onLost("\(member): back on the bus")
                    break
                } catch {
                    if Task.isCancelled { break }
                    if attempt == 20 { onLost("\(member): cannot rejoin the CAN bus: \(error); this device is off the bus") }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            _ = try? await loop.submit { self.rejoining = nil }.get()
        }
    }

    /// The socketcand handshake, then frames to the UART.
    private final class BusSide: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        enum Step { case hello, opening, joining, onBus }
        let link: CANBusLink
        let bus: String
        let ready: EventLoopPromise<Void>
        var step = Step.hello
        var splitter = Socketcand.MessageSplitter(maxMessage: 1 << 16)

        init(link: CANBusLink, bus: String, ready: EventLoopPromise<Void>) {
            self.link = link
            self.bus = bus
            self.ready = ready
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            for message in splitter.append(unwrapInboundIn(data).readableBytesView) {
                let isOK = message.starts(with: Array("< ok".utf8))
                switch step {
                case .hello where message == Socketcand.hi:
                    step = .opening
                    context.channel.writeAndFlush(bytes: Array("< open \(bus) >".utf8))
                case .opening where isOK:
                    step = .joining
                    context.channel.writeAndFlush(bytes: Array("< vtarget-member \(link.member) >< rawmode >".utf8))
                case .joining where isOK:
                    step = .onBus
                    ready.succeed()
                case .onBus:
                    if let frame = Socketcand.parseFrame(message) { link.fromBus(frame) }
                default:
                    ready.fail(JoinError(description: "the bus host said " + String(decoding: message, as: UTF8.self)))
                    context.close(promise: nil)
                    return
                }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            ready.fail(JoinError(description: "the bus host closed the connection"))
            link.busClosed(context.channel)
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    private final class UARTSide: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let link: CANBusLink
        var splitter = SLCAN.LineSplitter()
        init(link: CANBusLink) { self.link = link }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            for line in splitter.append(unwrapInboundIn(data).readableBytesView) { link.fromUART(line) }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
