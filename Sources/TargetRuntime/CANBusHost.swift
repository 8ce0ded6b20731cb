#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import Endpoints
import NIOCore
import NIOPosix
import Sandbox

/// A CAN bus as a process of its own (`vtarget can serve BUS`), so that every
/// target on this machine naming the bus shares it: targets of one run, of
/// several runs, and supervised instances alike. The first target to need it
/// starts it; it takes itself down when its last target leaves. Its
/// directory, `<runtime>/bus-<name>` (`bus-<namespace>.<name>` outside the
/// default namespace), holds the socketcand socket, `candump.log` and
/// `bus.json`, for as long as the bus lives.
public enum CANBusHost {
    /// How long a host started for a target that never comes waits for one.
    static let firstTargetWithin: TimeAmount = .seconds(10)

    public static func directory(bus: String, namespace: String, environment: [String: String]) -> String {
        directory(bus: bus, namespace: namespace, base: RuntimeDirectory.base(environment: environment))
    }

    /// The same, under the runtime directory `base`.
    public static func directory(bus: String, namespace: String, base: String) -> String {
        base + "/bus-" + (namespace == "default" ? bus : "\(namespace).\(bus)")
    }

    /// The command line a bus's host is started with (`vtarget` parses
    /// exactly this shape without a parser: `VTarget.busHost`).
    public static func hostArguments(bus: String, namespace: String) -> [String] {
        ["can", "serve", bus, "--namespace", namespace]
    }

    /// Serves the bus until its last target leaves (or none comes); returns
    /// the exit code, 0 also when another host already serves it.
    public static func serve(bus: String, namespace: String, environment: [String: String]) async throws -> Int32 {
        guard !bus.isEmpty, !bus.contains("/"), bus != ".", bus != "..", !bus.contains(" ") else {
            throw RuntimeError("\"\(bus)\" is not a bus name", code: .badInput)
        }
        try RuntimeDirectory.ensurePrivate(RuntimeDirectory.base(environment: environment), traversable: QEMUSandbox.isRoot)
        let dir = directory(bus: bus, namespace: namespace, environment: environment)
        guard let lock = try lockDirectory(dir) else { return 0 }
        defer { close(lock) }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let socket = dir + "/socketcand.sock"
        try RuntimeDirectory.checkSocketPath(socket)
        unlink(socket)  // one left by a host that was killed
        let hub = CANBusHub(name: bus, loop: loop, logPath: dir + "/candump.log")
        let port = try await hub.listen(tcpPort: 0, unixPath: socket)
        BusRecord(name: bus, namespace: namespace, ownerPID: getpid(), port: port, socket: socket, directory: dir).write()

        let (done, finish) = AsyncStream<String>.makeStream()
        try await loop.submit {
            // Files go before the last target hears `< ok >`: when its run
            // ends, nothing of the bus is left on disk.
            hub.onLastTargetLeft = {
                takeDown(dir)
                finish.yield("its last target left")
            }
            loop.scheduleTask(in: firstTargetWithin) {
                if !hub.hadTargets {
                    takeDown(dir)
                    finish.yield("no target joined")
                }
            }
        }.get()
        let signals = SignalWatch([SIGINT, SIGTERM, SIGHUP]) { s in
            _ = loop.submit { takeDown(dir) }
            finish.yield("signal \(s)")
        }
        defer { signals.cancel() }
        for await _ in done { break }
        await hub.close()
        try? await group.shutdownGracefully()
        return 0
    }

    /// The bus's record, with a host started when none serves it yet.
    public static func ensure(bus: String, namespace: String, environment: [String: String]) async throws -> BusRecord {
        let dir = directory(bus: bus, namespace: namespace, environment: environment)
        var host: ChildProcess?
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let record = BusRecord.live(in: dir), let fd = try? FileDescriptors.connectUnix(record.socket) {
                close(fd)
                return record
            }
            // None, or one on its way out: start one (a loser of the race exits at once).
            if host == nil || host?.exitStatus != nil {
                host = try await ChildProcess.spawn(SpawnRequest(
                    executable: Processes.ownExecutable, arguments: hostArguments(bus: bus, namespace: namespace),
                    environment: environment.map { "\($0.key)=\($0.value)" }, workingDirectory: "/",
                    fds: [-1, -1, -1], newSession: true, parentDeathSignal: 0))
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw RuntimeError("the CAN bus \"\(bus)\" did not start within 10 s; `vtarget can serve \(bus)` in a terminal shows why", code: .timeout)
    }

    /// Joins `member` to the bus, starting a host when needed. A host that is
    /// just taking itself down refuses the join; then a new one is started.
    /// A host that dies later (killed) is replaced the same way by the link.
    public static func join(
        bus: String, namespace: String, member: String, faults: [String: String], loop: any EventLoop,
        environment: [String: String], onLost: @escaping @Sendable (String) -> Void
    ) async throws -> (CANBusLink, BusRecord) {
        if let remote = try remoteBuses(environment: environment)[bus] {
            return try await joinRemote(bus: bus, namespace: namespace, remote: remote, member: member, faults: faults, loop: loop, onLost: onLost)
        }
        var lastError: (any Error)?
        for _ in 0..<5 {
            let record = try await ensure(bus: bus, namespace: namespace, environment: environment)
            do {
                let link = try await CANBusLink.join(
                    socketPath: record.socket, bus: bus, member: member, faults: faults, loop: loop, onLost: onLost,
                    rediscover: { try await ensure(bus: bus, namespace: namespace, environment: environment).socket })
                return (link, record)
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        throw RuntimeError("\(member): cannot join the CAN bus \"\(bus)\": \(lastError.map { "\($0)" } ?? "?")")
    }

    /// Locks the bus directory (made if missing) for this host; nil when
    /// another host holds it. Checks the lock is on the directory that is
    /// there now, not on one a departing host has just removed.
    static func lockDirectory(_ dir: String) throws(RuntimeError) -> Int32? {
        for _ in 0..<50 {
            if mkdir(dir, 0o700) != 0, errno != EEXIST {
                throw RuntimeError("cannot create \(dir): \(String(cString: strerror(errno)))")
            }
            let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
            if fd < 0 { continue }  // removed in between
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                close(fd)
                return nil
            }
            var held = stat(), there = stat()
            if fstat(fd, &held) == 0, stat(dir, &there) == 0, held.st_ino == there.st_ino, held.st_dev == there.st_dev {
                return fd
            }
            close(fd)
        }
        throw RuntimeError("cannot take \(dir): it keeps changing")
    }

    /// Everything of the bus on disk, in an order a joiner can never misread:
    /// the record first, the directory last.
    static func takeDown(_ dir: String) {
        for file in ["bus.json", "socketcand.sock", "candump.log"] { unlink(dir + "/" + file) }
        rmdir(dir)
    }
}
