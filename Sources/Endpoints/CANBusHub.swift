import CANProtocol
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// One CAN bus in user space. Every member is a socketcand client: targets
/// (a `CANBusLink` per CAN device, which names itself with `< vtarget-member >`),
/// python-can, `vtarget can dump|send`. Every frame from one member reaches
/// all others, in order. Faults (drop rate, delay, corruption, bus-off) are
/// injected here, bus-wide or per member. Confined to one event loop.
public final class CANBusHub: @unchecked Sendable {
    public struct Faults: Sendable, Equatable {
        public var drop = 0.0
        public var delayMilliseconds = 0
        public var corrupt = 0.0
        public var busOff = false
        public init() {}
    }

    public struct Counters: Sendable, Equatable {
        public var sent = 0, received = 0, malformed = 0, dropped = 0
    }

    struct Member {
        let name: String
        let send: (CANFrame) -> Void
        var counters = Counters()
    }

    public let name: String
    public let loop: any EventLoop
    private var members: [Int: Member] = [:]
    private var order: [Int] = []
    private var nextID = 0
    private var busFaults = Faults()
    private var memberFaults: [String: Faults] = [:]
    private var servers: [any Channel] = []
    private var socketClients: [ObjectIdentifier: any Channel] = [:]
    private var log: Int32 = -1
    private var rng = SystemRandomNumberGenerator()
    /// Numbers socketcand members for their names.
    fileprivate var socketcandClients = 0
    /// Targets on the bus now, and whether one ever was.
    public private(set) var targets = 0
    public private(set) var hadTargets = false
    /// Called on the loop when the last target leaves, before that target
    /// hears `< ok >`: the bus host takes itself down there.
    public var onLastTargetLeft: (() -> Void)?

    public init(name: String, loop: any EventLoop, logPath: String?) {
        self.name = name
        self.loop = loop
        if let logPath { log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600) }
    }

    // MARK: on the loop

    public func join(_ memberName: String, send: @escaping (CANFrame) -> Void) -> Int {
        nextID += 1
        members[nextID] = Member(name: memberName, send: send)
        order.append(nextID)
        return nextID
    }

    public func leave(_ id: Int) {
        members.removeValue(forKey: id)
        order.removeAll { $0 == id }
    }

    public func malformed(from id: Int) {
        members[id]?.counters.malformed += 1
    }

    public func counters() -> [(String, Counters)] {
        order.compactMap { members[$0].map { ($0.name, $0.counters) } }
    }

    /// Faults bus-wide (`member` nil) or for frames from one member.
    public func setFaults(_ f: Faults, member: String?) {
        if let member { memberFaults[member] = f } else { busFaults = f }
    }

    public func faults(member: String?) -> Faults {
        member.map { memberFaults[$0] ?? Faults() } ?? busFaults
    }

    /// The faults in force, bus-wide first (`nil`), then by member name: what
    /// `can fault` shows, so a fault left set from an earlier call is seen.
    public func activeFaults() -> [(member: String?, faults: Faults)] {
        (busFaults == Faults() ? [] : [(nil, busFaults)])
            + memberFaults.filter { $0.value != Faults() }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    public func deliver(_ frame: CANFrame, from id: Int) {
        guard var sender = members[id] else { return }
        let own = memberFaults[sender.name] ?? Faults()
        if own.busOff || busFaults.busOff {
            sender.counters.dropped += 1
            members[id] = sender
            return
        }
        sender.counters.sent += 1
        members[id] = sender
        var f = frame
        if max(own.drop, busFaults.drop) > 0, Double.random(in: 0..<1, using: &rng) < max(own.drop, busFaults.drop) {
            members[id]?.counters.dropped += 1
            return
        }
        if max(own.corrupt, busFaults.corrupt) > 0, !f.data.isEmpty,
           Double.random(in: 0..<1, using: &rng) < max(own.corrupt, busFaults.corrupt) {
            let bit = Int.random(in: 0..<(f.data.count * 8), using: &rng)
            f.data[bit / 8] ^= UInt8(1 << (bit % 8))
        }
        let delay = max(own.delayMilliseconds, busFaults.delayMilliseconds)
        if delay > 0 {
            loop.scheduleTask(in: .milliseconds(Int64(delay))) { self.fanOut(f, from: id) }
        } else {
            fanOut(f, from: id)
        }
    }

    private func fanOut(_ f: CANFrame, from id: Int) {
        logFrame(f)
        for m in order where m != id {
            guard var member = members[m] else { continue }
            if (memberFaults[member.name]?.busOff ?? false) { continue }  // a bus-off node hears nothing either
            member.counters.received += 1
            members[m] = member
            member.send(f)
        }
    }

    /// candump -L's log format: `(1700000000.123456) BUS 123#DEADBEEF`.
    private func logFrame(_ f: CANFrame) {
        guard log >= 0 else { return }
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        var us = String(t.tv_nsec / 1000)
        us = String(repeating: "0", count: 6 - us.count) + us
        let line = Array("(\(t.tv_sec).\(us)) \(name) \(CANText.cansend(f))\n".utf8)
        _ = line.withUnsafeBytes { write(log, $0.baseAddress, $0.count) }
    }

    // MARK: socketcand endpoints

    /// socketcand raw mode on loopback TCP (port 0: any free one) and on a
    /// unix socket; returns the TCP port.
    public func listen(tcpPort: Int, unixPath: String, host: String = "127.0.0.1") async throws -> Int {
        func bootstrap() -> ServerBootstrap {
            ServerBootstrap(group: loop)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.writeBufferWaterMark, value: .init(low: 32 << 10, high: 64 << 10))
                .childChannelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(SocketcandSession(hub: self)) }
                }
        }
        let tcp = try await bootstrap()
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: tcpPort).get()
        let unix = try await bootstrap().bind(unixDomainSocketPath: unixPath, cleanupExistingSocketFile: false).get()
        chmod(unixPath, 0o600)
        try await loop.submit { self.servers += [tcp, unix] }.get()
        return tcp.localAddress?.port ?? tcpPort
    }

    public func close() async {
        let all: [any Channel] = (try? await loop.submit {
            let c = self.servers + Array(self.socketClients.values)
            self.servers = []
            self.socketClients = [:]
            if self.log >= 0 { Glibc.close(self.log); self.log = -1 }
            return c
        }.get()) ?? []
        for c in all { try? await c.close() }
    }

    fileprivate func targetJoined() {
        targets += 1
        hadTargets = true
    }

    fileprivate func targetLeft() {
        targets -= 1
        if targets == 0 { onLastTargetLeft?() }
    }

    fileprivate func track(_ channel: any Channel, _ open: Bool) {
        if open { socketClients[ObjectIdentifier(channel)] = channel } else { socketClients.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// One socketcand client: greeting, open, rawmode, then frames both ways.
    final class SocketcandSession: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let hub: CANBusHub
        var splitter = Socketcand.MessageSplitter()
        var member: Int?
        var opened = false
        /// Set by `< vtarget-member NAME >`: a target, which keeps the bus alive.
        var targetName: String?
        var targetOnBus = false

        init(hub: CANBusHub) { self.hub = hub }

        func channelActive(context: ChannelHandlerContext) {
            hub.track(context.channel, true)
            context.channel.writeAndFlush(bytes: Socketcand.hi)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            let before = splitter.junk
            for message in splitter.append(buffer.readableBytesView) {
                guard let command = try? Socketcand.parse(message) else {
                    if let member { hub.malformed(from: member) }
                    continue
                }
                switch command {
                case .open:
                    opened = true
                    context.channel.writeAndFlush(bytes: Socketcand.ok)
                case .member(let name):
                    if member == nil { targetName = name }
                case .leave:
                    leaveBus()
                    context.channel.writeAndFlush(bytes: Socketcand.ok)
                    context.close(promise: nil)
                    return
                case .rawmode:
                    guard opened, member == nil else { continue }
                    hub.socketcandClients += 1
                    let channel = context.channel
                    if targetName != nil {
                        targetOnBus = true
                        hub.targetJoined()
                    }
                    member = hub.join(targetName ?? "socketcand-\(hub.socketcandClients)") { [weak self] frame in
                        guard let self else { return }
                        var t = timespec()
                        clock_gettime(CLOCK_REALTIME, &t)
                        channel.writeAndFlush(bytes: Socketcand.frameMessage(frame, seconds: t.tv_sec, microseconds: t.tv_nsec / 1000))
                        if !channel.isWritable {
                            // It stopped reading: it leaves the bus rather than stall it.
                            if let m = self.member { self.hub.leave(m) }
                            self.member = nil
                            channel.close(promise: nil)
                        }
                    }
                    context.channel.writeAndFlush(bytes: Socketcand.ok)
                case .send(let frame):
                    if let member { hub.deliver(frame, from: member) }
                case .fault(let settings):
                    apply(settings, context.channel)
                case .other:
                    if let member { hub.malformed(from: member) }
                }
            }
            if splitter.junk > before, let member { hub.malformed(from: member) }
        }

        /// `< vtarget-fault [member=NAME] drop=P delay=MS corrupt=P busoff=0|1 >`; answers the counters,
        /// then each fault in force as `faults@bus:…` or `faults@MEMBER:drop=P,delay=MS,corrupt=P,busoff`
        /// (only the settings that are not off).
        func apply(_ s: [String: String], _ channel: any Channel) {
            let target = s["member"]
            var f = hub.faults(member: target)
            if let v = s["drop"].flatMap(Double.init) { f.drop = min(max(v, 0), 1) }
            if let v = s["delay"].flatMap(Int.init) { f.delayMilliseconds = max(v, 0) }
            if let v = s["corrupt"].flatMap(Double.init) { f.corrupt = min(max(v, 0), 1) }
            if let v = s["busoff"] { f.busOff = v == "1" || v == "true" }
            hub.setFaults(f, member: target)
            var text = "< ok"
            for (name, c) in hub.counters() {
                text += " \(name):sent=\(c.sent),received=\(c.received),malformed=\(c.malformed),dropped=\(c.dropped)"
            }
            for (member, f) in hub.activeFaults() {
                var parts: [String] = []
                if f.drop > 0 { parts.append("drop=\(f.drop)") }
                if f.delayMilliseconds > 0 { parts.append("delay=\(f.delayMilliseconds)") }
                if f.corrupt > 0 { parts.append("corrupt=\(f.corrupt)") }
                if f.busOff { parts.append("busoff") }
                text += " faults@\(member ?? "bus"):" + parts.joined(separator: ",")
            }
            channel.writeAndFlush(bytes: Array((text + " >").utf8))
        }

        func leaveBus() {
            if let member { hub.leave(member) }
            member = nil
            if targetOnBus {
                targetOnBus = false
                hub.targetLeft()
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            leaveBus()
            hub.track(context.channel, false)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
