#if canImport(Glibc)
import Glibc
#endif
import HostOS
import Endpoints
import NIOCore
import NIOPosix

/// A CAN bus served by another machine or Pod: `vtarget can serve BUS
/// --listen HOST:PORT` hosts it on a network address (on a cluster, a
/// Deployment behind a Service) and every target whose environment names
/// it in `VTARGET_REMOTE_CAN` joins it over socketcand TCP instead of
/// starting a local host.
extension CANBusHost {
    /// `BUS=HOST:PORT[,BUS=HOST:PORT...]`: the buses this process joins remotely.
    public static let remoteVariable = "VTARGET_REMOTE_CAN"
    /// socketcand's own port.
    public static let socketcandPort = 29536
    /// How long a target waits for a remote bus to answer: on a cluster the
    /// bus's Pod may start after its members'.
    static let remoteJoinWithin: Duration = .seconds(60)

    public struct RemoteBus: Sendable, Equatable {
        public var host: String
        public var port: Int
        /// `tcp://HOST:PORT`, the address `CANBusLink` connects to.
        public var linkAddress: String { "tcp://\(host):\(port)" }
    }

    /// The remote buses named in `environment`; a malformed entry is bad input.
    public static func remoteBuses(environment: [String: String]) throws(RuntimeError) -> [String: RemoteBus] {
        guard let text = environment[remoteVariable], !text.isEmpty else { return [:] }
        var out: [String: RemoteBus] = [:]
        for entry in text.split(separator: ",", omittingEmptySubsequences: true) {
            guard let eq = entry.firstIndex(of: "=") else {
                throw RuntimeError("\(remoteVariable): \"\(entry)\" is not BUS=HOST:PORT (e.g. default=can-default:\(socketcandPort))", code: .badInput)
            }
            let bus = String(entry[..<eq])
            guard isBusName(bus) else { throw RuntimeError("\(remoteVariable): \"\(bus)\" is not a bus name", code: .badInput) }
            do {
                out[bus] = try parseAddress(String(entry[entry.index(after: eq)...]))
            } catch {
                throw RuntimeError("\(remoteVariable): bus \(bus): \(error)", code: .badInput)
            }
        }
        return out
    }

    static func isBusName(_ bus: String) -> Bool {
        !bus.isEmpty && !bus.contains("/") && bus != "." && bus != ".." && !bus.contains(" ") && !bus.contains(",") && !bus.contains("=")
    }

    /// `HOST:PORT` or `[IPv6]:PORT`.
    public static func parseAddress(_ text: String) throws(RuntimeError) -> RemoteBus {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            throw RuntimeError("\"\(text)\" is not HOST:PORT with a port from 1 to 65535", code: .badInput)
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }) else {
            throw RuntimeError("\"\(text)\" has no host before the port", code: .badInput)
        }
        return RemoteBus(host: host, port: port)
    }

    /// Joins `member` to the bus at `remote`, waiting for it to answer; the
    /// link rejoins the same address when the host goes away.
    static func joinRemote(
        bus: String, namespace: String, remote: RemoteBus, member: String, faults: [String: String], loop: any EventLoop,
        onLost: @escaping @Sendable (String) -> Void
    ) async throws -> (CANBusLink, BusRecord) {
        let deadline = ContinuousClock.now + remoteJoinWithin
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                let link = try await CANBusLink.join(
                    socketPath: remote.linkAddress, bus: bus, member: member, faults: faults, loop: loop, onLost: onLost,
                    rediscover: { remote.linkAddress })
                // No unix socket, and no local host process: the record only says where the bus is.
                return (link, BusRecord(name: bus, namespace: namespace, ownerPID: 0, port: remote.port, socket: "", directory: "", host: remote.host))
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        throw RuntimeError("\(member): the remote CAN bus \"\(bus)\" at \(remote.host):\(remote.port) (\(remoteVariable)) did not answer within 60 s: \(lastError.map { "\($0)" } ?? "?")", code: .timeout)
    }

    /// Serves the bus on `HOST:PORT` (and, for `vtarget can dump|send` on
    /// this machine, on its unix socket) until a signal: a bus for other
    /// machines lives on when its targets leave, as a cluster's Service does.
    public static func serveNetwork(bus: String, namespace: String, listen: RemoteBus, environment: [String: String],
                                    announce: @Sendable (String) -> Void) async throws -> Int32 {
        guard isBusName(bus) else { throw RuntimeError("\"\(bus)\" is not a bus name", code: .badInput) }
        try RuntimeDirectory.ensurePrivate(RuntimeDirectory.base(environment: environment), traversable: QEMUSandbox.isRoot)
        let dir = directory(bus: bus, namespace: namespace, environment: environment)
        guard let lock = try lockDirectory(dir) else {
            throw RuntimeError("the CAN bus \"\(bus)\" is already served on this machine", code: .badInput)
        }
        defer { close(lock) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let socket = dir + "/socketcand.sock"
        try RuntimeDirectory.checkSocketPath(socket)
        unlink(socket)
        let hub = CANBusHub(name: bus, loop: loop, logPath: dir + "/candump.log")
        let port: Int
        do {
            port = try await hub.listen(tcpPort: listen.port, unixPath: socket, host: listen.host)
        } catch {
            await hub.close()
            try? await group.shutdownGracefully()
            takeDown(dir)
            throw RuntimeError("cannot listen on \(listen.host):\(listen.port) for the CAN bus \"\(bus)\": \(error)", code: .io)
        }
        BusRecord(name: bus, namespace: namespace, ownerPID: getpid(), port: port, socket: socket, directory: dir).write()
        announce("CAN bus \(bus) on \(listen.host):\(port) (socketcand)")
        let (done, finish) = AsyncStream<String>.makeStream()
        let signals = SignalWatch([SIGINT, SIGTERM, SIGHUP]) { s in finish.yield("signal \(s)") }
        defer { signals.cancel() }
        for await _ in done { break }
        await hub.close()
        takeDown(dir)
        try? await group.shutdownGracefully()
        return 0
    }
}
