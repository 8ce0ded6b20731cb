import NIOCore

/// Telnet with the RFC 2217 COM-PORT-OPTION, in front of a serial hub client:
/// what pyserial's `rfc2217://` and labgrid's NetworkSerialPort speak. Data
/// passes unchanged (0xFF doubled on the wire); option negotiation is answered
/// so clients see a port that accepts their settings. The UART has no real
/// line speed, so baud rate, data size, parity and stop bits are acknowledged
/// as asked.
public final class RFC2217Handler: ChannelDuplexHandler, @unchecked Sendable {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    static let IAC: UInt8 = 255, DONT: UInt8 = 254, DO: UInt8 = 253, WONT: UInt8 = 252, WILL: UInt8 = 251
    static let SB: UInt8 = 250, SE: UInt8 = 240
    static let BINARY: UInt8 = 0, SGA: UInt8 = 3, COMPORT: UInt8 = 44
    static let supported: Set<UInt8> = [BINARY, SGA, COMPORT]

    enum State { case data, iac, command(UInt8), sub, subIAC }
    private var state = State.data
    private var sub: [UInt8] = []
    /// Options already answered, so negotiation never loops.
    private var answered: Set<[UInt8]> = []

    public init() {}

    public func channelActive(context: ChannelHandlerContext) {
        // Offer what a port server offers; clients answer or ignore.
        send(context, [Self.IAC, Self.WILL, Self.BINARY, Self.IAC, Self.DO, Self.BINARY,
                       Self.IAC, Self.WILL, Self.SGA, Self.IAC, Self.WILL, Self.COMPORT])
        answered.formUnion([[Self.WILL, Self.BINARY], [Self.DO, Self.BINARY], [Self.WILL, Self.SGA], [Self.WILL, Self.COMPORT]])
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        var out: [UInt8] = []
        while let b = input.readInteger(as: UInt8.self) {
            switch state {
            case .data:
                if b == Self.IAC { state = .iac } else { out.append(b) }
            case .iac:
                switch b {
                case Self.IAC: out.append(b); state = .data
                case Self.WILL, Self.WONT, Self.DO, Self.DONT: state = .command(b)
                case Self.SB: sub = []; state = .sub
                default: state = .data  // NOP, GA, BRK...: nothing to do
                }
            case .command(let verb):
                negotiate(context, verb, b)
                state = .data
            case .sub:
                if b == Self.IAC { state = .subIAC } else { sub.append(b) }
            case .subIAC:
                if b == Self.SE {
                    subnegotiation(context)
                    state = .data
                } else {
                    sub.append(b)  // IAC IAC inside a subnegotiation
                    state = .sub
                }
            }
        }
        if !out.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: out.count)
            buffer.writeBytes(out)
            context.fireChannelRead(wrapInboundOut(buffer))
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let input = unwrapOutboundIn(data)
        guard input.readableBytesView.contains(Self.IAC) else {
            return context.write(data, promise: promise)
        }
        var escaped = context.channel.allocator.buffer(capacity: input.readableBytes + 16)
        for b in input.readableBytesView {
            escaped.writeInteger(b)
            if b == Self.IAC { escaped.writeInteger(b) }
        }
        context.write(wrapOutboundOut(escaped), promise: promise)
    }

    private func negotiate(_ context: ChannelHandlerContext, _ verb: UInt8, _ option: UInt8) {
        let ok = Self.supported.contains(option)
        let reply: UInt8
        switch verb {
        case Self.WILL: reply = ok ? Self.DO : Self.DONT
        case Self.DO: reply = ok ? Self.WILL : Self.WONT
        case Self.WONT: reply = Self.DONT
        default: reply = Self.WONT
        }
        if answered.insert([reply, option]).inserted {
            send(context, [Self.IAC, reply, option])
        }
    }

    /// COM-PORT-OPTION commands from the client are acknowledged with the
    /// server code (command + 100) and the value asked for.
    private func subnegotiation(_ context: ChannelHandlerContext) {
        guard sub.count >= 2, sub[0] == Self.COMPORT else { return }
        let command = sub[1]
        var value = Array(sub.dropFirst(2))
        if command == 1, value.allSatisfy({ $0 == 0 }) { value = [0, 1, 0xC2, 0] }  // baud rate asked: 115200
        var reply: [UInt8] = [Self.IAC, Self.SB, Self.COMPORT, command &+ 100]
        for b in value {
            reply.append(b)
            if b == Self.IAC { reply.append(b) }
        }
        send(context, reply + [Self.IAC, Self.SE])
    }

    private func send(_ context: ChannelHandlerContext, _ bytes: [UInt8]) {
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }
}
