import NIOCore
import NIOPosix
import QMP
import Sandbox
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A QMP server that is not QEMU, for client tests that need none: it
/// greets, answers `qmp_capabilities`, answers scripted commands by name with
/// the request's id, and on cue holds or delays replies, emits events, sends
/// malformed JSON or hangs up mid-conversation. It serves one end of a socket
/// pair, the way vtarget is handed QEMU's monitor.
final class StubQMPServer: Sendable {
    /// What the server does with a command.
    indirect enum Answer: Sendable {
        /// This object, with the request's id added.
        case message([String: JSONValue])
        /// Kept until the test releases it with `release(_:with:)`.
        case hold
        case after(TimeAmount, Answer)
        /// These bytes as they are, JSON or not.
        case raw(String)
        case hangUp

        static func reply(_ value: JSONValue) -> Answer { .message(["return": value]) }
        static func error(_ errorClass: String, _ desc: String) -> Answer {
            .message(["error": .object(["class": .string(errorClass), "desc": .string(desc)])])
        }
    }

    static let greeting = JSONValue.object(["QMP": .object([
        "version": .object(["qemu": .object(["major": .number(8), "minor": .number(2), "micro": .number(2)]), "package": .string("")]),
        "capabilities": .array([.string("oob")]),
    ])])

    private struct State {
        var script: [String: Answer]
        var channel: (any Channel)?
        var clientEnd: Int32?
        var received: [JSONValue] = []
        var held: [JSONValue] = []
        var outstanding = 0
        var maxOutstanding = 0
        /// Tests waiting for the state to reach something; each returns true once it
        /// has resumed its waiter, which it does whatever the state when told to give up.
        var waiters: [@Sendable (State, _ givingUp: Bool) -> Bool] = []
        var gaveUp = false

        mutating func settle() {
            let snapshot = self
            waiters = waiters.filter { !$0(snapshot, gaveUp) }
        }
    }

    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let greetWith: JSONValue?
    private let state: Mutex<State>

    private init(greeting: JSONValue?, script: [String: Answer]) {
        greetWith = greeting
        state = Mutex(State(script: script))
    }

    /// A server listening on one end of a fresh socket pair; `greeting: nil` stays silent until told.
    static func start(greeting: JSONValue? = StubQMPServer.greeting, script: [String: Answer] = [:]) async throws -> StubQMPServer {
        let stub = StubQMPServer(greeting: greeting, script: script)
        let (serverEnd, clientEnd) = try makeSocketPair()
        let channel = try await ClientBootstrap(group: stub.group)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Session(stub)) } }
            .withConnectedSocket(serverEnd).get()
        stub.state.withLock {
            $0.channel = channel
            $0.clientEnd = clientEnd
        }
        return stub
    }

    /// A negotiated client for the length of `body`; the server is shut down after, whatever `body` does.
    /// A client command waits for ever for a reply that never comes, and a
    /// time limit cannot cancel it: after `deadline` the server hangs up,
    /// which fails every command, and its own waits end with what they have.
    /// The timer runs on the server's event loop, not in the tests' thread
    /// pool, which blocking integration tests can hold for a minute.
    static func with(script: [String: Answer] = [:], then: [String] = [], deadline: TimeAmount = .seconds(120),
                     _ body: (StubQMPServer, QMPClient) async throws -> Void) async throws {
        let stub = try await start(script: script)
        let watchdog = stub.group.next().scheduleTask(in: deadline) { stub.giveUp() }
        do {
            let (channel, core, events) = try await stub.attachClient()
            try await body(stub, try await QMPClient.handshake(on: channel, core: core, events: events, then: then))
        } catch {
            watchdog.cancel()
            try await stub.shutdown()
            throw error
        }
        watchdog.cancel()
        if stub.state.withLock({ $0.gaveUp }) { Issue.record("the stub hung up after \(deadline): the test was stuck") }
        try await stub.shutdown()
    }

    /// vtarget's side of the pair, with the client's handler and nothing sent yet.
    func attachClient() async throws -> (any Channel, QMPConnectionCore, AsyncStream<JSONValue>) {
        guard let fd = state.withLock({ s in defer { s.clientEnd = nil }; return s.clientEnd }) else {
            throw QMPError.protocolViolation("the stub serves one client")
        }
        let (handler, core, events) = QMPClient.makeHandler()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler) } }
            .withConnectedSocket(fd).get()
        return (channel, core, events)
    }

    func shutdown() async throws {
        let (channel, fd) = state.withLock { s in (s.channel, s.clientEnd) }
        if let fd { _ = Glibc.close(fd) }
        try? await channel?.close()
        try await group.shutdownGracefully()
    }

    // MARK: what the test sees and does

    /// Every command received so far, once there are at least `count`.
    func requests(atLeast count: Int) async throws -> [JSONValue] {
        try await until("\(count) commands received", { $0.received.count >= count }, \.received)
    }

    /// The commands held unanswered, once there are at least `count`.
    func held(atLeast count: Int) async throws -> [JSONValue] {
        try await until("\(count) commands held", { $0.held.count >= count }, \.held)
    }

    /// The most commands received and not yet answered at any one time.
    var maxOutstanding: Int { state.withLock { $0.maxOutstanding } }

    func release(_ request: JSONValue, with answer: Answer) {
        state.withLock { s in s.held.removeAll { $0 == request } }
        perform(answer, to: request)
    }

    /// An event, or any message, as its JSON text.
    func send(_ text: String) {
        write(text + "\r\n")
    }

    func hangUp() {
        state.withLock { $0.channel }?.close(promise: nil)
    }

    /// Ends every wait, the client's and the test's.
    func giveUp() {
        hangUp()
        state.withLock { s in
            s.gaveUp = true
            s.settle()
        }
    }

    // MARK: serving

    /// Throws once the stub has given up, so a stuck test fails where it waits
    /// instead of going on with fewer commands than it asked for.
    private func until<T: Sendable>(_ what: String, _ ready: @escaping @Sendable (State) -> Bool,
                                    _ value: @escaping @Sendable (State) -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
            let check: @Sendable (State, Bool) -> Bool = { s, givingUp in
                if ready(s) {
                    cont.resume(returning: value(s))
                } else if givingUp {
                    cont.resume(throwing: StubGaveUp(waitingFor: what))
                } else {
                    return false
                }
                return true
            }
            state.withLock { s in if !check(s, s.gaveUp) { s.waiters.append(check) } }
        }
    }

    struct StubGaveUp: Error, CustomStringConvertible {
        let waitingFor: String
        var description: String { "the stub gave up while the test waited for \(waitingFor)" }
    }

    private func write(_ text: String) {
        guard let channel = state.withLock({ $0.channel }) else { return }
        channel.writeAndFlush(channel.allocator.buffer(string: text), promise: nil)
    }

    fileprivate func greet(_ channel: any Channel) {
        guard let greetWith else { return }
        channel.writeAndFlush(channel.allocator.buffer(bytes: greetWith.serialized() + [0x0D, 0x0A]), promise: nil)
    }

    fileprivate func handle(_ request: JSONValue) {
        let name = request["execute"]?.stringValue ?? ""
        let answer = state.withLock { s in
            s.received.append(request)
            s.outstanding += 1
            s.maxOutstanding = max(s.maxOutstanding, s.outstanding)
            s.settle()
            return s.script[name] ?? (name == "qmp_capabilities"
                ? .reply(.object([:])) : .error("CommandNotFound", "The command \(name) has not been found"))
        }
        perform(answer, to: request)
    }

    private func perform(_ answer: Answer, to request: JSONValue) {
        switch answer {
        case .message(var object):
            if let id = request["id"] { object["id"] = id }
            state.withLock { $0.outstanding -= 1 }
            write(JSONValue.object(object).description + "\r\n")
        case .hold:
            state.withLock { s in
                s.held.append(request)
                s.settle()
            }
        case .after(let delay, let next):
            group.next().scheduleTask(in: delay) { self.perform(next, to: request) }
        case .raw(let text):
            write(text)
        case .hangUp:
            hangUp()
        }
    }

    /// Splits what the client writes into commands.
    private final class Session: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let stub: StubQMPServer
        let splitter = Mutex(JSONStreamSplitter())
        init(_ stub: StubQMPServer) { self.stub = stub }

        func channelActive(context: ChannelHandlerContext) {
            stub.greet(context.channel)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data).readableBytesView
            let split = splitter.withLock { $0.append(bytes) }
            for text in split.messages {
                if let request = try? JSONValue.parse(text) { stub.handle(request) }
            }
            if split.failure != nil { context.close(promise: nil) }
        }
    }
}
