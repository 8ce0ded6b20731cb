import NIOCore
import Synchronization

public enum QMPError: Error, Sendable, CustomStringConvertible, Equatable {
    /// QEMU answered with an error object.
    case command(errorClass: String, description: String)
    /// The connection ended; every pending command fails with this.
    case disconnected(String)
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .command(let c, let d): return "QMP error \(c): \(d)"
        case .disconnected(let why): return "QMP connection closed: \(why)"
        case .protocolViolation(let why): return "QMP protocol violation: \(why)"
        }
    }
}

/// vtarget's hand on a running QEMU. Replies are matched by id, events are
/// delivered on their own stream, and at most `maxInFlight` commands are
/// outstanding at once, as QEMU's own queue expects.
public final class QMPClient: Sendable {
    public static let maxInFlight = 8

    public let channel: any Channel
    public let events: AsyncStream<JSONValue>
    private let core: QMPConnectionCore

    init(channel: any Channel, core: QMPConnectionCore, events: AsyncStream<JSONValue>) {
        self.channel = channel
        self.core = core
        self.events = events
    }

    /// The greeting QEMU sent, `{"QMP": {...}}`.
    public var greeting: JSONValue? { core.state.withLock { $0.greeting } }

    /// Wraps a connected stream (a socket pair end or a unix socket) and
    /// completes the handshake: greeting, then `qmp_capabilities`.
    /// `then` are sent in the same write as `qmp_capabilities` (QMP runs
    /// commands in order), saving a round trip per command at start-up.
    public static func handshake(
        on channel: any Channel, core: QMPConnectionCore, events: AsyncStream<JSONValue>, then: [String] = []
    ) async throws(QMPError) -> QMPClient {
        let client = QMPClient(channel: channel, core: core, events: events)
        _ = try await core.waitForGreeting()
        _ = try await client.executeInOrder(["qmp_capabilities"] + then)
        return client
    }

    /// The handler to install in a channel pipeline, with the core it feeds.
    public static func makeHandler() -> (QMPChannelHandler, QMPConnectionCore, AsyncStream<JSONValue>) {
        let (stream, continuation) = AsyncStream<JSONValue>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let core = QMPConnectionCore(events: continuation)
        return (QMPChannelHandler(core: core), core, stream)
    }

    public func execute(_ command: String, arguments: JSONValue? = nil) async throws(QMPError) -> JSONValue {
        let r: Result<JSONValue, QMPError> = await withCheckedContinuation { cont in
            send(command, arguments: arguments) { cont.resume(returning: $0) }
        }
        return try r.get()
    }

    /// The same as `execute`, for callers on an event loop: `reply` is called
    /// on whichever thread the answer arrives, with no task in between.
    /// Every command, vtarget's own and its proxy clients', comes this way,
    /// so the query cache sees them all.
    public func send(_ command: String, arguments: JSONValue? = nil, reply: @escaping QMPConnectionCore.Reply) {
        let id = core.nextID()
        let key = QMPConnectionCore.cacheableQueries.contains(command)
            ? command + String(decoding: arguments?.serialized() ?? [], as: UTF8.self) : nil
        let route = core.route(key: key, id: id, reply: reply)
        let deliver: QMPConnectionCore.Reply
        switch route {
        case .answered(let result): return reply(result)
        case .joined: return
        case .send(let generation):
            guard let key else { deliver = reply; break }
            deliver = { [core] result in core.landed(key: key, id: id, generation: generation, result: result, reply: reply) }
        }
        core.acquireSlot { [core, channel] slot in
            if case .failure(let e) = slot { return deliver(.failure(e)) }
            var object: [String: JSONValue] = ["execute": .string(command), "id": .string(id)]
            if let arguments { object["arguments"] = arguments }
            let bytes = JSONValue.object(object).serialized() + [0x0A]
            guard core.register(id, { result in
                core.releaseSlot()
                deliver(result)
            }) else { return }
            var buffer = channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            channel.writeAndFlush(buffer).whenFailure { error in core.fail(id, .disconnected("\(error)")) }
        }
    }

    /// Several argument-less commands written at once and run in that order;
    /// the first error is thrown. Counts as one command against the limit.
    public func executeInOrder(_ commands: [String]) async throws(QMPError) -> [JSONValue] {
        core.changed()
        try await core.acquireSlot()
        defer { core.releaseSlot() }
        let ids = commands.map { _ in core.nextID() }
        core.expect(ids)
        let bytes = zip(commands, ids).flatMap { request($0, nil, $1) }
        var results: [JSONValue] = []
        for (i, id) in ids.enumerated() {
            // Register every reply before writing; write once with the first.
            results.append(try await send(id, i == 0 ? bytes : nil).get())
        }
        return results
    }

    private func request(_ command: String, _ arguments: JSONValue?, _ id: String) -> [UInt8] {
        var object: [String: JSONValue] = ["execute": .string(command), "id": .string(id)]
        if let arguments { object["arguments"] = arguments }
        return JSONValue.object(object).serialized() + [0x0A]
    }

    /// Registers a reply for `id`, writes `bytes` if given, awaits the reply.
    private func send(_ id: String, _ bytes: [UInt8]?) async -> Result<JSONValue, QMPError> {
        await withCheckedContinuation { cont in
            guard core.register(id, cont) else { return }
            guard let bytes else { return }
            var buffer = channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            channel.writeAndFlush(buffer).whenFailure { error in
                self.core.fail(id, .disconnected("\(error)"))
            }
        }
    }

    /// Human monitor commands through QMP.
    public func hmp(_ commandLine: String) async throws(QMPError) -> String {
        let r = try await execute("human-monitor-command", arguments: .object(["command-line": .string(commandLine)]))
        return r.stringValue ?? ""
    }

    public func close() {
        channel.close(promise: nil)
    }
}

/// The state shared by the client and its channel handler.
public final class QMPConnectionCore: Sendable {
    /// Where a reply goes: a continuation's resume, or the proxy's callback.
    public typealias Reply = @Sendable (Result<JSONValue, QMPError>) -> Void

    struct State {
        var greeting: JSONValue?
        var greetingWaiters: [CheckedContinuation<Result<JSONValue, QMPError>, Never>] = []
        var pending: [String: Reply] = [:]
        var closed: QMPError?
        /// Replies for ids sent before their continuation was registered.
        var expected: Set<String> = []
        var early: [String: Result<JSONValue, QMPError>] = [:]
        var counter = 0
        var inFlight = 0
        var slotWaiters: [@Sendable (Result<Void, QMPError>) -> Void] = []
        /// Bumped by every event and every command that is not a cacheable query.
        var generation: UInt64 = 0
        /// Replies to cacheable queries (by command and arguments), good for this generation.
        var answers: [String: JSONValue] = [:]
        /// The query of this key on its way to QEMU, and the generation it was sent in.
        var flights: [String: (id: String, generation: UInt64)] = [:]
        /// Callers sharing a query on its way (by its id).
        var riders: [String: [Reply]] = [:]
    }

    /// Read-only queries whose answer QEMU changes only with an event or
    /// because of a command. Asked again with neither in between, they are
    /// answered from QEMU's last reply; asked while the same query is on its
    /// way, they share its reply. A command sent after a change is answered
    /// only by QEMU: `stop` then `query-status` says "paused", whoever sent
    /// which. What it buys: many clients polling status cost QEMU one query,
    /// and answers in far less than QEMU's monitor round trip.
    public static let cacheableQueries: Set<String> = [
        "query-status", "query-version", "query-name", "query-uuid", "query-target", "query-kvm",
        "query-commands", "query-qmp-schema",
    ]

    enum Route {
        case answered(Result<JSONValue, QMPError>)
        /// Rides on the same query already on its way.
        case joined
        case send(generation: UInt64)
    }

    /// Where a command goes: answered here, onto a query on its way, or to QEMU.
    func route(key: String?, id: String, reply: @escaping Reply) -> Route {
        state.withLock { s in
            if let closed = s.closed { return .answered(.failure(closed)) }
            guard let key else {
                s.generation += 1
                s.answers = [:]
                return .send(generation: s.generation)
            }
            if let answer = s.answers[key] { return .answered(.success(answer)) }
            if let f = s.flights[key], f.generation == s.generation {
                s.riders[f.id, default: []].append(reply)
                return .joined
            }
            s.flights[key] = (id, s.generation)
            return .send(generation: s.generation)
        }
    }

    /// A cacheable query's reply: kept when nothing changed since it was sent, shared with its riders.
    func landed(key: String, id: String, generation: UInt64, result: Result<JSONValue, QMPError>, reply: Reply) {
        let riders = state.withLock { s in
            if s.flights[key]?.id == id { s.flights[key] = nil }
            if case .success(let v) = result, s.generation == generation { s.answers[key] = v }
            return s.riders.removeValue(forKey: id) ?? []
        }
        reply(result)
        for r in riders { r(result) }
    }

    /// Something may have changed what queries answer.
    func changed() {
        state.withLock { s in
            s.generation += 1
            s.answers = [:]
        }
    }

    let state = Mutex(State())
    let events: AsyncStream<JSONValue>.Continuation

    init(events: AsyncStream<JSONValue>.Continuation) { self.events = events }

    func nextID() -> String {
        state.withLock { s in
            s.counter += 1
            return "vt-\(s.counter)"
        }
    }

    func acquireSlot() async throws(QMPError) {
        let r: Result<Void, QMPError> = await withCheckedContinuation { cont in
            acquireSlot { cont.resume(returning: $0) }
        }
        try r.get()
    }

    /// Calls `then` once a slot is free (at once when one is).
    func acquireSlot(then: @escaping @Sendable (Result<Void, QMPError>) -> Void) {
        let immediate: Result<Void, QMPError>? = state.withLock { s in
            if let closed = s.closed { return .failure(closed) }
            if s.inFlight < QMPClient.maxInFlight {
                s.inFlight += 1
                return .success(())
            }
            s.slotWaiters.append(then)
            return nil
        }
        if let immediate { then(immediate) }
    }

    func releaseSlot() {
        let next = state.withLock { s -> (@Sendable (Result<Void, QMPError>) -> Void)? in
            if !s.slotWaiters.isEmpty { return s.slotWaiters.removeFirst() }
            s.inFlight -= 1
            return nil
        }
        next?(.success(()))
    }

    func expect(_ ids: [String]) {
        state.withLock { $0.expected.formUnion(ids) }
    }

    func register(_ id: String, _ cont: CheckedContinuation<Result<JSONValue, QMPError>, Never>) -> Bool {
        register(id) { cont.resume(returning: $0) }
    }

    /// False (and `reply` called) when the reply is already here or the
    /// connection is closed.
    func register(_ id: String, _ reply: @escaping Reply) -> Bool {
        let ready: Result<JSONValue, QMPError>? = state.withLock { s in
            if let r = s.early.removeValue(forKey: id) {
                s.expected.remove(id)
                return r
            }
            if let c = s.closed { return .failure(c) }
            s.expected.remove(id)
            s.pending[id] = reply
            return nil
        }
        if let ready {
            reply(ready)
            return false
        }
        return true
    }

    func fail(_ id: String, _ error: QMPError) {
        state.withLock { $0.pending.removeValue(forKey: id) }?(.failure(error))
    }

    func waitForGreeting() async throws(QMPError) -> JSONValue {
        let r: Result<JSONValue, QMPError> = await withCheckedContinuation { cont in
            let ready: Result<JSONValue, QMPError>? = state.withLock { s in
                if let g = s.greeting { return .success(g) }
                if let c = s.closed { return .failure(c) }
                s.greetingWaiters.append(cont)
                return nil
            }
            if let ready { cont.resume(returning: ready) }
        }
        return try r.get()
    }

    func received(_ message: JSONValue) {
        if message["QMP"] != nil {
            let waiters = state.withLock { s in
                s.greeting = message
                defer { s.greetingWaiters = [] }
                return s.greetingWaiters
            }
            for w in waiters { w.resume(returning: .success(message)) }
        } else if message["event"] != nil {
            changed()
            events.yield(message)
        } else if let id = message["id"]?.stringValue {
            let result: Result<JSONValue, QMPError>
            if let r = message["return"] {
                result = .success(r)
            } else if let e = message["error"] {
                result = .failure(.command(errorClass: e["class"]?.stringValue ?? "GenericError",
                                           description: e["desc"]?.stringValue ?? "\(e)"))
            } else {
                result = .failure(.protocolViolation("reply without return or error: \(message)"))
            }
            let waiter = state.withLock { s in
                if let w = s.pending.removeValue(forKey: id) { return Optional(w) }
                if s.expected.contains(id) { s.early[id] = result }
                return nil
            }
            waiter?(result)
        }
    }

    func closed(_ error: QMPError) {
        let (pending, greeters, slots) = state.withLock { s in
            if s.closed == nil { s.closed = error }
            defer { s.pending = [:]; s.greetingWaiters = []; s.slotWaiters = [] }
            return (Array(s.pending.values), s.greetingWaiters, s.slotWaiters)
        }
        for p in pending { p(.failure(error)) }
        for g in greeters { g.resume(returning: .failure(error)) }
        for w in slots { w(.failure(error)) }
        events.finish()
    }
}

/// Splits QEMU's output into messages and hands them to the core.
public final class QMPChannelHandler: ChannelInboundHandler, Sendable {
    public typealias InboundIn = ByteBuffer

    let core: QMPConnectionCore
    private let splitter = Mutex(JSONStreamSplitter())

    init(core: QMPConnectionCore) { self.core = core }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        let split = splitter.withLock { $0.append(bytes) }
        // What QEMU sent before the garbage still counts (a reply a command waits for).
        for m in split.messages {
            // Balanced brackets around invalid JSON pass the splitter; skipping the
            // message could drop the reply a command waits for, for ever.
            guard let value = try? JSONValue.parse(m) else {
                core.closed(.protocolViolation("QEMU sent malformed JSON"))
                context.close(promise: nil)
                return
            }
            core.received(value)
        }
        if split.failure != nil {
            core.closed(.protocolViolation("QEMU sent malformed JSON"))
            context.close(promise: nil)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        core.closed(.disconnected("QEMU closed the monitor"))
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        core.closed(.disconnected("\(error)"))
        context.close(promise: nil)
    }
}
