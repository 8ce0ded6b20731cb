#if canImport(Glibc)
import Glibc
#endif
// Foundation, for the `Thread` that moves QEMU into its cgroup v1 groups.
import Foundation
import HostOS
import InstanceContract
import Endpoints
import NIOCore
import NIOPosix
import QEMULaunch
import QMP
import Sandbox
import Synchronization
import TargetSpec

/// One running QEMU and everything vtarget holds of it: the process, the
/// QMP client, a hub per UART and the tail of its stderr.
public final class TargetProcess: Sendable {
    public let name: String
    public let plan: LaunchPlan
    public let directory: String
    public let child: ChildProcess
    /// Our ends of the socket pairs (by chardev id) and of the stderr pipe,
    /// until NIO takes them over; whatever is left is closed at the end.
    private let unclaimed: Mutex<[String: Int32]>
    /// Each UART's FIFO ends (by chardev id), until NIO takes them over.
    private let uarts: Mutex<[String: UARTFIFOs]>
    private let stderrTail = StderrTail()
    private let attached = Mutex<Attached>(Attached())

    struct Attached {
        var qmp: QMPClient?
        var proxy: QMPProxy?
        /// Forwards QEMU's events to the proxy's clients; ends when the monitor closes.
        var events: Task<Void, Never>?
        var hubs: [SerialHub] = []
        var stderr: (any Channel)?
        /// Loopback TCP ports serving RFC 2217, by device.
        var rfc2217: [String: Int] = [:]
        /// UARTs carrying SLCAN to a bus host, and the buses by name.
        var canLinks: [CANBusLink] = []
        var buses: [String: BusRecord] = [:]
        /// Joins the CAN devices to their buses, alongside QEMU's start and
        /// the guest's first instructions; awaited by `busesJoined` and
        /// (cancelled first) by `closeEndpoints`.
        var busJoin: Task<Void, any Error>?
    }

    public var rfc2217Ports: [String: Int] { attached.withLock { $0.rfc2217 } }
    /// The CAN buses this target is on, by name.
    public var buses: [String: BusRecord] { attached.withLock { $0.buses } }

    /// Spawns QEMU paused (`-S`) with one end of each socket pair and its UARTs' FIFOs made.
    public static func spawn(plan: LaunchPlan, directory: String, qemuPath: String, sandbox: SandboxPolicy) async throws -> TargetProcess {
        var ours: [String: Int32] = [:]
        var theirs: [Int32] = []
        var fds: [Int32] = [-1, -1]
        let (errR, errW) = try makePipe()
        fds.append(errW)
        defer {
            close(errW)
            for fd in theirs { close(fd) }
        }
        var uarts: [String: UARTFIFOs] = [:]
        func abandon() {
            for fd in ours.values { close(fd) }
            for f in uarts.values { f.close() }
            close(errR)
        }
        do {
            for (c, childFD) in plan.socketPairs {
                let (a, b) = try makeSocketPair()
                ours[c.chardevID] = a
                theirs.append(b)
                precondition(Int32(fds.count) == childFD)
                fds.append(b)
            }
            for c in plan.channels {
                guard case .fifoPair(let path) = c.transport else { continue }
                uarts[c.chardevID] = try UARTFIFOs.make(path: path, owner: sandbox.runAs)
            }
        } catch {
            abandon()
            throw RuntimeError("\(plan.targetName): \(error)", cause: error)
        }
        for f in plan.passedFiles.sorted(by: { $0.childFD < $1.childFD }) {
            let fd = open(f.path, (f.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)
            if fd < 0 {
                let why = String(cString: strerror(errno))
                abandon()
                throw RuntimeError("\(plan.targetName): cannot open \(f.path): \(why)")
            }
            theirs.append(fd)
            precondition(Int32(fds.count) == f.childFD)
            fds.append(fd)
        }
        var cgroup: CgroupLimits?
        if sandbox.seccomp, CgroupLimits.availability().0 {
            let (limits, why) = CgroupLimits.create(name: plan.targetName, memoryBytes: plan.guestMemoryBytes, cpus: plan.cpus)
            cgroup = limits
            if limits == nil { note("\(plan.targetName): cgroup limits not applied: \(why)") }
        }
        // Under cgroup v2 QEMU is created in its group: moving it there
        // after the spawn took 5-12 ms and held up QEMU's own thread starts.
        let bornInside = cgroup?.directories.count == 1 ? cgroup?.directories.first : nil
        let request = SpawnRequest(
            executable: qemuPath, arguments: plan.arguments,
            environment: ["PATH=/usr/bin:/bin", "LC_ALL=C"],
            workingDirectory: plan.workingDirectory, fds: fds, sandbox: sandbox, cgroup: bornInside)
        do {
            let child = try await ChildProcess.spawn(request)
            ours["stderr"] = errR
            // cgroup v1: QEMU is still paused at -S, and joins its limits before `cont` (see `joinLimits`).
            let joining = cgroup.flatMap { bornInside == nil ? Self.joinLimits($0, pid: child.pid, name: plan.targetName) : nil }
            return TargetProcess(name: plan.targetName, plan: plan, directory: directory, child: child, fds: ours, uarts: uarts,
                                 cgroup: cgroup, limitsJoined: joining)
        } catch {
            abandon()
            cgroup?.remove()
            throw RuntimeError("\(plan.targetName): \(error)", code: .spawn, cause: error)
        }
    }

    /// Memory and CPU limits, when cgroups allow.
    public let cgroup: CgroupLimits?
    /// QEMU's move into its cgroup v1 groups, when it was not born in its group.
    private let limitsJoined: Task<Void, Never>?

    /// Moves QEMU into its cgroup v1 groups on a thread of its own. Each
    /// move waits out an RCU grace period (8-10 ms for the two here), which
    /// QEMU's own start-up, paused at -S, covers; `connect` waits for it
    /// before `cont`, so no guest code runs outside the limits.
    private static func joinLimits(_ limits: CgroupLimits, pid: pid_t, name: String) -> Task<Void, Never> {
        Task {
            let failure: RuntimeError? = await withCheckedContinuation { done in
                Thread.detachNewThread {
                    do throws(RuntimeError) { try limits.add(pid); done.resume(returning: nil) } catch { done.resume(returning: error) }
                }
            }
            if let failure {
                note("\(name): \(failure)")
                limits.remove()
            }
        }
    }

    private init(name: String, plan: LaunchPlan, directory: String, child: ChildProcess, fds: [String: Int32],
                 uarts: [String: UARTFIFOs], cgroup: CgroupLimits?, limitsJoined: Task<Void, Never>?) {
        self.cgroup = cgroup
        self.limitsJoined = limitsJoined
        self.name = name
        self.plan = plan
        self.directory = directory
        self.child = child
        self.unclaimed = Mutex(fds)
        self.uarts = Mutex(uarts)
    }

    private func claim(_ id: String) throws(RuntimeError) -> Int32 {
        guard let fd = unclaimed.withLock({ $0.removeValue(forKey: id) }) else {
            throw RuntimeError("\(name): no channel \(id)")
        }
        return fd
    }

    /// A UART's FIFO ends for NIO to own; its placeholder stays here.
    private func claimUART(_ id: String) throws(RuntimeError) -> (input: Int32, output: Int32) {
        guard let ends = uarts.withLock({ u -> (Int32, Int32)? in
            guard let f = u[id], f.fromGuest >= 0 else { return nil }
            u[id]?.fromGuest = -1
            u[id]?.toGuest = -1
            return (f.fromGuest, f.toGuest)
        }) else { throw RuntimeError("\(name): no UART \(id)") }
        return ends
    }

    /// QEMU has opened every chardev: from now on a UART's end of file means QEMU closed it.
    private func dropPlaceholders() {
        uarts.withLock { u in
            for id in u.keys {
                if let fd = u[id]?.placeholder, fd >= 0 { close(fd) }
                u[id]?.placeholder = -1
            }
        }
    }

    /// What QEMU printed on stderr, last 8 KiB.
    public var stderrText: String { stderrTail.text }

    public var qmp: QMPClient? { attached.withLock { $0.qmp } }
    public var hubs: [SerialHub] { attached.withLock { $0.hubs } }
    /// The CAN devices on their buses so far.
    var canLinks: [CANBusLink] { attached.withLock { $0.canLinks } }

    /// Every path of this instance.
    public var layout: InstanceLayout { InstanceLayout(directory: directory) }

    /// Gives the instance's client sockets (serial, takeover, QMP) to a
    /// tenant, so the sidecars it runs as itself can connect; the directory
    /// they are in stays vtarget's.
    public func handEndpoints(to owner: ProcessOwner) throws(RuntimeError) {
        let devices = plan.channels.filter { $0.role != .qmp }.map(\.device)
        for path in layout.sockets(devices: devices) where access(path, F_OK) == 0 {
            if lchown(path, owner.uid, owner.gid) != 0 {
                throw RuntimeError("cannot hand \(path) to uid \(owner.uid): \(String(cString: strerror(errno)))", code: .io)
            }
        }
    }

    /// Reads stderr, attaches every UART but the CAN ones to a hub listening
    /// on `<dir>/<device>.sock`, completes the QMP handshake and, with
    /// `startRunning`, lets the guest run (`cont`) in the same write.
    /// Output reaches `onSerial`. Every CAN device joins its bus (starting
    /// the bus's host when needed) after that, off this path: the guest need
    /// not wait for a whole `vtarget can serve` to start, since what it sends
    /// before its link takes the UART's FIFO waits in the FIFO, and a host
    /// starting beside QEMU's own start-up (CPU-bound, ~20 ms) slowed it on
    /// two cores. A join that fails later reaches `onBusFailure` (else
    /// stderr); `busesJoined` waits for the joins.
    /// `powerButton`: the guest acts on `system_powerdown`, so `soft-reboot`
    /// without a guest agent can press it (`ACPIReboot`).
    /// A `capture` (a recording) hears the serial input, the CAN frames and
    /// the QMP proxy's conversation (clients' lines and QEMU's events).
    public func connect(
        group: any EventLoopGroup, startRunning: Bool, logRotation: SerialLog.Rotation = SerialLog.Rotation(),
        environment: [String: String],
        onQMPEvent: @escaping @Sendable (JSONValue) -> Void = { _ in },
        powerButton: Bool = false,
        onBusFailure: (@Sendable (any Error) -> Void)? = nil,
        capture: RunCapture? = nil,
        onSerial: @escaping @Sendable (_ device: String, _ bytes: [UInt8]) -> Void
    ) async throws {
        let loop = group.next()
        let tail = stderrTail
        let errChannel = try await NIOPipeBootstrap(group: loop)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(TailHandler(tail: tail)) }
            }
            .takingOwnershipOfDescriptor(input: try claim("stderr")).get()
        attached.withLock { $0.stderr = errChannel }

        // The UART side first: it needs nothing from QEMU, so this overlaps
        // QEMU's own start-up, which the QMP greeting then waits out.
        let logs = layout.logDirectory
        mkdir(logs, 0o700)
        for c in plan.channels where c.role != .qmp {
            if case .can = c.role { continue }
            let device = c.device
            let name = self.name
            let hub = SerialHub(name: device, loop: loop, onOutput: { onSerial(device, $0) }, report: { note("\(name): \($0)") })
            attached.withLock { $0.hubs.append(hub) }
            try await hub.record(to: SerialLog(directory: logs, device: device, rotation: logRotation))
            if plan.recordReplay?.mode == .record { try await hub.paceInput(gap: Self.recordedInputGap(environment: environment)) }
            if let capture, plan.serialChannels.contains(where: { $0.device == device }) {
                try await hub.observeInput { capture.serialInput(target: name, device: device, bytes: $0) }
            }
            let ends = try claimUART(c.chardevID)
            try await hub.attach(input: ends.input, output: ends.output)
            try await hub.listen(path: layout.serialSocket(device), forcePath: layout.forceSocket(device))
            if let port = c.rfc2217Port {
                let bound = try await hub.listenRFC2217(port: port)
                attached.withLock { $0.rfc2217[device] = bound }
            }
        }

        await limitsJoined?.value
        let (handler, core, events) = QMPClient.makeHandler()
        let qmpChannel = try await ClientBootstrap(group: loop)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler) } }
            .withConnectedSocket(try claim("vt-qmp")).get()
        let client = try await QMPClient.handshake(on: qmpChannel, core: core, events: events, then: startRunning ? ["cont"] : [])
        dropPlaceholders()
        startBusJoins(loop: loop, environment: environment, capture: capture, onFailure: onBusFailure ?? { note("\($0)") })
        let reboot = ACPIReboot(qmp: client, honoursPowerButton: powerButton)
        let proxy = QMPProxy(qmp: client, loop: loop, transcript: capture?.qmpTranscript(target: name), local: reboot.localCommand)
        let forward = Task { for await e in client.events { proxy.broadcast(e); onQMPEvent(e); reboot.observe(e) } }
        attached.withLock {
            $0.qmp = client
            $0.proxy = proxy
            $0.events = forward
        }
        try await proxy.listen(path: layout.qmpSocket)
    }

    /// Starts joining every CAN device to its bus, one device after another, in
    /// a task this target owns.
    private func startBusJoins(loop: any EventLoop, environment: [String: String], capture: RunCapture?,
                               onFailure: @escaping @Sendable (any Error) -> Void) {
        let cans = plan.channels.compactMap { c -> (PlannedChannel, String)? in
            guard case .can(let bus, _) = c.role else { return nil }
            return (c, bus)
        }
        guard !cans.isEmpty else { return }
        let task = Task { [self] in
            do {
                for (c, bus) in cans {
                    try Task.checkCancellation()
                    var faults: [String: String] = [:]
                    if let f = c.canFaults {
                        faults = ["drop": "\(f.drop)", "delay": "\(Int(f.delaySeconds * 1000))", "corrupt": "\(f.corrupt)", "busoff": f.busOff ? "1" : "0"]
                    }
                    let name = self.name
                    let (link, record) = try await CANBusHost.join(
                        bus: bus, namespace: plan.namespace, member: "\(name)/\(c.device)", faults: faults, loop: loop,
                        environment: environment, onLost: { note("\(name): \($0)") })
                    attached.withLock {
                        $0.canLinks.append(link)
                        $0.buses[bus] = record
                    }
                    if plan.recordReplay?.mode == .record { try await link.paceInput(gap: Self.recordedInputGap(environment: environment)) }
                    if let capture {
                        let device = c.device
                        try await link.observeFrames { capture.canFrame(target: name, device: device, bus: bus, frame: $0, direction: $1) }
                    }
                    let ends = try claimUART(c.chardevID)
                    try await link.attach(input: ends.input, output: ends.output)
                }
            } catch {
                // Cancelled: the target is being closed, and nobody needs to hear.
                if !Task.isCancelled { onFailure(RuntimeError("\(name): \(error)", cause: error)) }
                throw error
            }
        }
        attached.withLock { $0.busJoin = task }
    }

    /// Waits until every CAN device is on its bus (at once when none has
    /// one); throws what stopped a join. Commands, sidecars and readiness
    /// wait here, as they talk to the bus or promise it is there.
    public func busesJoined() async throws {
        try await attached.withLock { $0.busJoin }?.value
    }

    /// Clients on any of this instance's endpoints (serial, RFC 2217, QMP).
    public func clientCount() async -> Int {
        var n = 0
        for h in hubs { n += await h.clientCount() }
        if let proxy = attached.withLock({ $0.proxy }) { n += await proxy.clientCount() }
        return n
    }

    /// The first UART's last 64 KiB of output, for failure reports.
    public func recentOutput() async -> [UInt8] {
        guard let hub = hubs.first(where: { h in plan.serialChannels.contains { $0.device == h.name } }) else { return [] }
        return await hub.recentOutput()
    }


    /// A clean `quit` through QMP first; SIGTERM, then SIGKILL, each bounded.
    public func stop(grace: Double = 1.5) async -> ExitStatus {
        if child.exitStatus == nil, let qmp {
            _ = await withDeadline(grace) { _ = try? await qmp.execute("quit") }
        }
        let child = self.child
        let status: ExitStatus
        if let exited = await withDeadline(grace, { await child.waitForExit() }) {
            status = exited
        } else {
            status = await child.terminate(grace: grace)
        }
        await closeEndpoints()
        // A move still under way would leave its group behind.
        await limitsJoined?.value
        cgroup?.remove()
        return status
    }

    /// Closes every socket vtarget holds for this target, attached or not.
    public func closeEndpoints() async {
        // The joins first: a link they make after this would be left open.
        // A join under way is let finish (bounded): cancelled half-way, it
        // could leave a bus host it started waiting for a member that never comes.
        if let join = attached.withLock({ $0.busJoin }) {
            if await withDeadline(5, { _ = await join.result }) == nil {
                join.cancel()
                _ = await join.result
            }
        }
        let a = attached.withLock { a in
            defer { a = Attached() }
            return a
        }
        let (qmp, hubs, err) = (a.qmp, a.hubs, a.stderr)
        await a.proxy?.close()
        qmp?.close()
        await a.events?.value
        for h in hubs { await h.close() }
        for link in a.canLinks { await link.leave() }
        if let err { try? await err.close() }
        for fd in unclaimed.withLock({ u in defer { u = [:] }; return Array(u.values) }) { close(fd) }
        for f in uarts.withLock({ u in defer { u = [:] }; return Array(u.values) }) { f.close() }
    }

    private final class StderrTail: Sendable {
        let buffer = Mutex(ReplayBuffer(capacity: 8 << 10))
        var text: String { String(decoding: buffer.withLock { $0.contents }, as: UTF8.self) }
    }

    private final class TailHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let tail: StderrTail
        init(tail: StderrTail) { self.tail = tail }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let b = unwrapInboundIn(data)
            tail.buffer.withLock { $0.append(b.readableBytesView) }
        }
    }
}
