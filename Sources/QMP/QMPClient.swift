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
/// outstanding at once. QEMU reads its monitor one byte per system call
/// (several system calls a byte, about 3.5 µs a byte measured), so every
/// byte a command carries costs QEMU time. A command sent while no other
/// id-less one is in flight carries no id at all (QEMU's reply then has
/// none, and can only be its): a lone command, the latency case, saves the
/// 7 bytes of `,"id":0` (~25 µs). The others get small numbers, reused once
/// answered (`"id":3` costs 8 bytes less than `"id":"vt-1234"`); the cap
/// keeps them to one digit.
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
    /// so the query cache sees them all. With `flush: false` a command sent
    /// at once is only written: the caller flushes (`flush()`) once for a
    /// burst. A command that waited for a slot goes out when an answer frees
    /// one, flushed at the end of that read of QEMU's.
    public func send(_ command: String, arguments: JSONValue? = nil, flush: Bool = true, reply: @escaping QMPConnectionCore.Reply) {
        let key = QMPConnectionCore.cacheableQueries.contains(command)
            ? command + String(decoding: arguments?.serialized() ?? [], as: UTF8.self) : nil
        let route = core.route(key: key, reply: reply)
        let deliver: QMPConnectionCore.Reply
        switch route {
        case .answered(let result): return reply(result)
        case .joined: return
        case .send(let generation, let flight):
            guard let key, let flight else { deliver = reply; break }
            deliver = { [core] result in core.landed(key: key, flight: flight, generation: generation, result: result, reply: reply) }
        }
        core.acquireSlot { [core, channel] slot, immediately in
            if case .failure(let e) = slot { return deliver(.failure(e)) }
            let id: Int?
            switch core.register({ result in
                core.releaseSlot()
                deliver(result)
            }) {
            case .closed: return
            case .anonymous: id = nil
            case .id(let n): id = n
            }
            var buffer = channel.allocator.buffer(capacity: 48)
            buffer.writeBytes(Self.request(command, arguments, id))
            // A failed write closes the channel, and its end fails every pending command.
            if !immediately {
                channel.write(buffer, promise: nil)
                core.flushAtReadEnd()
            } else if flush {
                channel.writeAndFlush(buffer, promise: nil)
            } else {
                channel.write(buffer, promise: nil)
            }
        }
    }

    /// Sends what `send(…, flush: false)` wrote.
    public func flush() {
        channel.flush()
    }

    /// Called on the channel's loop after QEMU's output from one read has been
    /// handed out (and after the connection ended): a proxy flushes then what
    /// the replies in it wrote, once per read instead of once per reply.
    public func onReadComplete(_ body: @escaping @Sendable () -> Void) {
        core.readComplete.withLock { $0 = ReadCompleteHook(body: body) }
    }

    /// Several argument-less commands written at once and run in that order;
    /// the first error is thrown. Counts as one command against the limit.
    public func executeInOrder(_ commands: [String]) async throws(QMPError) -> [JSONValue] {
        core.changed()
        try await core.acquireSlot()
        defer { core.releaseSlot() }
        let ids = commands.map { _ in core.nextID() }
        core.expect(ids)
        let bytes = zip(commands, ids).flatMap { Self.request($0, nil, $1) }
        var results: [JSONValue] = []
        for (i, id) in ids.enumerated() {
            // Register every reply before writing; write once with the first.
            results.append(try await send(id, i == 0 ? bytes : nil).get())
        }
        return results
    }

    /// `{"execute":…,"arguments":…,"id":N}`, as short as QMP allows (no
    /// spaces, no newline: QEMU's parser ends a command at its brace; no id
    /// for the one id-less command in flight).
    static func request(_ command: String, _ arguments: JSONValue?, _ id: Int?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(48)
        out += #"{"execute":"#.utf8
        JSONValue.writeString(command, into: &out)
        if let arguments {
            out += #","arguments":"#.utf8
            arguments.write(into: &out)
        }
        if let id {
            out += #","id":"#.utf8
            out += String(id).utf8
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Registers a reply for `id`, writes `bytes` if given, awaits the reply.
    private func send(_ id: Int, _ bytes: [UInt8]?) async -> Result<JSONValue, QMPError> {
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

/// Holds `QMPClient.onReadComplete`'s body (see `QMPConnectionCore.readComplete`).
struct ReadCompleteHook {
    var body: (@Sendable () -> Void)?
}

/// The state shared by the client and its channel handler.
public final class QMPConnectionCore: Sendable {
    /// Where a reply goes: a continuation's resume, or the proxy's callback.
    public typealias Reply = @Sendable (Result<JSONValue, QMPError>) -> Void

    struct State {
        var greeting: JSONValue?
        var greetingWaiters: [CheckedContinuation<Result<JSONValue, QMPError>, Never>] = []
        var pending: [Int: Reply] = [:]
        /// The one command in flight sent without an id: a reply without
        /// one is its (QEMU echoes the id of every other).
        var anonymous: Reply?
        var closed: QMPError?
        /// Replies for ids sent before their continuation was registered.
        var expected: Set<Int> = []
        var early: [Int: Result<JSONValue, QMPError>] = [:]
        /// Ids answered, to be given again (smallest last), and the next never given.
        var freeIDs: [Int] = []
        var nextFreshID = 0
        /// Numbers queries on their way to QEMU, for their riders.
        var flightCounter = 0
        /// A slot was handed over during a read of QEMU's: flush when it ends.
        var flushAtReadEnd = false
        var inFlight = 0
        var slotWaiters: [@Sendable (Result<Void, QMPError>, Bool) -> Void] = []
        /// Bumped by every event and every command that is not a cacheable query.
        var generation: UInt64 = 0
        /// Replies to cacheable queries (by command and arguments), good for this generation.
        var answers: [String: JSONValue] = [:]
        /// The query of this key on its way to QEMU, and the generation it was sent in.
        var flights: [String: (flight: Int, generation: UInt64)] = [:]
        /// Callers sharing a query on its way (by its flight).
        var riders: [Int: [Reply]] = [:]

        mutating func takeID() -> Int {
            if let id = freeIDs.popLast() { return id }
            nextFreshID += 1
            return nextFreshID - 1
        }
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
        /// To QEMU; a cacheable query is a flight others may ride on.
        case send(generation: UInt64, flight: Int?)
    }

    /// Where a command goes: answered here, onto a query on its way, or to QEMU.
    func route(key: String?, reply: @escaping Reply) -> Route {
        state.withLock { s in
            if let closed = s.closed { return .answered(.failure(closed)) }
            guard let key else {
                s.generation += 1
                if !s.answers.isEmpty { s.answers = [:] }
                return .send(generation: s.generation, flight: nil)
            }
            if let answer = s.answers[key] { return .answered(.success(answer)) }
            if let f = s.flights[key], f.generation == s.generation {
                s.riders[f.flight, default: []].append(reply)
                return .joined
            }
            s.flightCounter += 1
            s.flights[key] = (s.flightCounter, s.generation)
            return .send(generation: s.generation, flight: s.flightCounter)
        }
    }

    /// A cacheable query's reply: kept when nothing changed since it was sent, shared with its riders.
    func landed(key: String, flight: Int, generation: UInt64, result: Result<JSONValue, QMPError>, reply: Reply) {
        let riders = state.withLock { s in
            if s.flights[key]?.flight == flight { s.flights[key] = nil }
            if case .success(let v) = result, s.generation == generation { s.answers[key] = v }
            return s.riders.removeValue(forKey: flight) ?? []
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
    /// See `QMPClient.onReadComplete`. In a struct, not a bare closure:
    /// `withLock`'s inout of a function type wraps the stored closure in two
    /// more reabstraction thunks on every call, so the hook, called once per
    /// read of QEMU's, got one call deeper each time (+30 µs a forwarded
    /// command per 2,500 commands, measured, and a stack overflow in time).
    let readComplete = Mutex(ReadCompleteHook())

    init(events: AsyncStream<JSONValue>.Continuation) { self.events = events }

    func nextID() -> Int {
        state.withLock { $0.takeID() }
    }

    func acquireSlot() async throws(QMPError) {
        let r: Result<Void, QMPError> = await withCheckedContinuation { cont in
            acquireSlot { r, _ in cont.resume(returning: r) }
        }
        try r.get()
    }

    /// Calls `then` once a slot is free: at once when one is (`true`), else
    /// when an answer frees one, inside that read of QEMU's (`false`).
    func acquireSlot(then: @escaping @Sendable (Result<Void, QMPError>, _ immediately: Bool) -> Void) {
        let immediate: Result<Void, QMPError>? = state.withLock { s in
            if let closed = s.closed { return .failure(closed) }
            if s.inFlight < QMPClient.maxInFlight {
                s.inFlight += 1
                return .success(())
            }
            s.slotWaiters.append(then)
            return nil
        }
        if let immediate { then(immediate, true) }
    }

    func releaseSlot() {
        let next = state.withLock { s -> (@Sendable (Result<Void, QMPError>, Bool) -> Void)? in
            if !s.slotWaiters.isEmpty { return s.slotWaiters.removeFirst() }
            s.inFlight -= 1
            return nil
        }
        next?(.success(()), false)
    }

    func flushAtReadEnd() {
        state.withLock { $0.flushAtReadEnd = true }
    }

    /// The end of a read of QEMU's: what it owes to be flushed, and to whom it says so.
    func readEnded() -> (flush: Bool, hook: (@Sendable () -> Void)?) {
        let flush = state.withLock { s in
            defer { s.flushAtReadEnd = false }
            return s.flushAtReadEnd
        }
        return (flush, readComplete.withLock { $0.body })
    }

    func expect(_ ids: [Int]) {
        state.withLock { $0.expected.formUnion(ids) }
    }

    func register(_ id: Int, _ cont: CheckedContinuation<Result<JSONValue, QMPError>, Never>) -> Bool {
        register(id) { cont.resume(returning: $0) }
    }

    /// How a command about to be written is told apart from the others.
    enum Ticket: Equatable {
        /// The connection is closed (and `reply` was called with why).
        case closed
        /// No other id-less command is in flight: it goes without an id.
        case anonymous
        case id(Int)
    }

    /// Where the reply of a command about to be written goes, awaited.
    func register(_ reply: @escaping Reply) -> Ticket {
        let ticket: Ticket = state.withLock { s in
            if s.closed != nil { return .closed }
            if s.anonymous == nil {
                s.anonymous = reply
                return .anonymous
            }
            let id = s.takeID()
            s.pending[id] = reply
            return .id(id)
        }
        if ticket == .closed, let c = state.withLock({ $0.closed }) { reply(.failure(c)) }
        return ticket
    }

    /// False (and `reply` called) when the reply is already here or the
    /// connection is closed.
    func register(_ id: Int, _ reply: @escaping Reply) -> Bool {
        let ready: Result<JSONValue, QMPError>? = state.withLock { s in
            if let r = s.early.removeValue(forKey: id) {
                s.expected.remove(id)
                s.freeIDs.append(id)
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

    func fail(_ id: Int, _ error: QMPError) {
        state.withLock { s -> Reply? in
            guard let reply = s.pending.removeValue(forKey: id) else { return nil }
            s.freeIDs.append(id)
            return reply
        }?(.failure(error))
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
        } else if message["id"] == nil || message["id"] == .null {
            state.withLock { s in
                defer { s.anonymous = nil }
                return s.anonymous
            }?(Self.result(of: message))
        } else if case .number(let n) = message["id"], let id = Int(exactly: n) {
            let result = Self.result(of: message)
            let waiter = state.withLock { s in
                if let w = s.pending.removeValue(forKey: id) {
                    s.freeIDs.append(id)
                    return Optional(w)
                }
                if s.expected.contains(id) { s.early[id] = result }
                return nil
            }
            waiter?(result)
        }
    }

    /// What a reply says: its `return`, its `error`, or that it is no reply.
    static func result(of message: JSONValue) -> Result<JSONValue, QMPError> {
        if let r = message["return"] { return .success(r) }
        if let e = message["error"] {
            return .failure(.command(errorClass: e["class"]?.stringValue ?? "GenericError",
                                     description: e["desc"]?.stringValue ?? "\(e)"))
        }
        return .failure(.protocolViolation("reply without return or error: \(message)"))
    }

    func closed(_ error: QMPError) {
        let (pending, greeters, slots) = state.withLock { s in
            if s.closed == nil { s.closed = error }
            defer { s.pending = [:]; s.anonymous = nil; s.greetingWaiters = []; s.slotWaiters = [] }
            return (Array(s.pending.values) + [s.anonymous].compactMap { $0 }, s.greetingWaiters, s.slotWaiters)
        }
        for p in pending { p(.failure(error)) }
        for g in greeters { g.resume(returning: .failure(error)) }
        for w in slots { w(.failure(error), false) }
        events.finish()
        readComplete.withLock { $0.body }?()
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

    public func channelReadComplete(context: ChannelHandlerContext) {
        let (flush, hook) = core.readEnded()
        if flush { context.channel.flush() }
        hook?()
        context.fireChannelReadComplete()
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
