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
    private var bus: (any Channel)?
    private var uart: (any Channel)?
    private let ready: EventLoopPromise<Void>
    private var leaving = false
    private let onLost: @Sendable (String) -> Void

    private init(member: String, loop: any EventLoop, onLost: @escaping @Sendable (String) -> Void) {
        self.member = member
        self.loop = loop
        self.ready = loop.makePromise()
        self.onLost = onLost
    }

    public struct JoinError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Connects to the bus host at `socketPath` and joins as `member` (the
    /// faults, if any, as `< vtarget-fault >` settings). Fails, with nothing
    /// left open, when the host goes away first (it may be taking itself down).
    /// `onLost` hears when the bus goes away later.
    public static func join(
        socketPath: String, bus: String, member: String, faults: [String: String], loop: any EventLoop,
        onLost: @escaping @Sendable (String) -> Void
    ) async throws -> CANBusLink {
        let link = CANBusLink(member: member, loop: loop, onLost: onLost)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(BusSide(link: link, bus: bus)) } }
            .connect(unixDomainSocketPath: socketPath).get()
        let timeout = loop.scheduleTask(in: .seconds(5)) { link.ready.fail(JoinError(description: "the bus host did not answer within 5 s")) }
        do {
            try await link.ready.futureResult.get()
            timeout.cancel()
        } catch {
            timeout.cancel()
            try? await channel.close()
            throw error
        }
        try await loop.submit {
            link.bus = channel
            if !faults.isEmpty {
                let settings = ["member=\(member)"] + faults.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                link.write(Array(("< vtarget-fault " + settings.joined(separator: " ") + " >").utf8), to: channel)
            }
        }.get()
        return link
    }

    /// Takes over vtarget's ends of the UART's FIFOs.
    public func attach(input: Int32, output: Int32) async throws {
        let channel = try await NIOPipeBootstrap(group: loop)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(UARTSide(link: self)) } }
            .takingOwnershipOfDescriptors(input: input, output: output).get()
        try await loop.submit { self.uart = channel }.get()
    }

    /// Says goodbye and waits (at most 2 s) for the host to let go, so that
    /// when this returns a host this was the last target of has removed its
    /// files. Then closes the UART side.
    public func leave() async {
        let bus: (any Channel)? = try? await loop.submit {
            self.leaving = true
            if let b = self.bus { self.write(Array("< vtarget-leave >".utf8), to: b) }
            return self.bus
        }.get()
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

    private func write(_ bytes: [UInt8], to channel: any Channel) {
        var b = channel.allocator.buffer(capacity: bytes.count)
        b.writeBytes(bytes)
        channel.writeAndFlush(b, promise: nil)
    }

    fileprivate func fromBus(_ frame: CANFrame) {
        guard let uart else { return }
        write(SLCAN.encode(frame), to: uart)
    }

    fileprivate func fromUART(_ line: [UInt8]) {
        guard let bus else { return }
        if let frame = try? SLCAN.decode(line) {
            write(Socketcand.sendMessage(frame), to: bus)
        } else {
            // An unknown command, which the host counts as malformed for this member.
            write(Array("< vtarget-malformed >".utf8), to: bus)
        }
    }

    fileprivate func busClosed() {
        ready.fail(JoinError(description: "the bus host closed the connection"))
        if bus != nil, !leaving { onLost("\(member): the CAN bus host went away; this device is off the bus") }
        bus = nil
    }

    /// The socketcand handshake, then frames to the UART.
    private final class BusSide: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        enum Step { case hello, opening, joining, onBus }
        let link: CANBusLink
        let bus: String
        var step = Step.hello
        var splitter = Socketcand.MessageSplitter(maxMessage: 1 << 16)

        init(link: CANBusLink, bus: String) {
            self.link = link
            self.bus = bus
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            for message in splitter.append(unwrapInboundIn(data).readableBytesView) {
                let isOK = message.starts(with: Array("< ok".utf8))
                switch step {
                case .hello where message == Socketcand.hi:
                    step = .opening
                    link.write(Array("< open \(bus) >".utf8), to: context.channel)
                case .opening where isOK:
                    step = .joining
                    link.write(Array("< vtarget-member \(link.member) >< rawmode >".utf8), to: context.channel)
                case .joining where isOK:
                    step = .onBus
                    link.ready.succeed()
                case .onBus:
                    if let frame = Socketcand.parseFrame(message) { link.fromBus(frame) }
                default:
                    link.ready.fail(JoinError(description: "the bus host said " + String(decoding: message, as: UTF8.self)))
                    context.close(promise: nil)
                    return
                }
            }
        }

        func channelInactive(context: ChannelHandlerContext) { link.busClosed() }
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
