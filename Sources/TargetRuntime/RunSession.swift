#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import InstanceContract
import Dispatch
import MachineCatalog
import NIOCore
import NIOPosix
import QEMULaunch
import Sandbox
import TargetSpec
import YAMLTree
import Endpoints

public struct RunConfiguration: Sendable {
    /// `--until`: exit 0 once any serial output matches.
    public var until: String?
    public var timeoutSeconds: Double?
    /// `--ttl`, overriding the spec's.
    public var ttlSeconds: Double?
    /// `-- CMD ARGS`: run with the endpoints in its environment; its exit code is ours.
    public var command: [String]
    public var environment: [String: String]
    public var host: HostFacts
    public var launch: LaunchOptions
    /// False only with `--no-sandbox`.
    public var sandbox: Bool
    public var logRotation = SerialLog.Rotation()
    /// `--junit FILE`: where the report goes.
    public var junitPath: String?
    /// Set when the supervisor runs this session for one instance: the
    /// instance's directory (instead of one below the run's), where its
    /// status goes, and no serial copy on stdout.
    public var supervised: SupervisedInstance?

    public init(until: String? = nil, timeoutSeconds: Double? = nil, ttlSeconds: Double? = nil, command: [String] = [],
                environment: [String: String], host: HostFacts = HostFacts(), launch: LaunchOptions = LaunchOptions(),
                sandbox: Bool = true) {
        self.sandbox = sandbox
        self.until = until
        self.timeoutSeconds = timeoutSeconds
        self.ttlSeconds = ttlSeconds
        self.command = command
        self.environment = environment
        self.host = host
        self.launch = launch
    }
}

/// Exit codes of the contract.
public enum ExitCode {
    public static let success: Int32 = 0
    public static let failure: Int32 = 1
    public static let badInput: Int32 = 2
}

/// `vtarget run`: start every target, stream serial to stdout, decide the
/// exit code, and tear everything down whatever happens.
public struct RunSession: Sendable {
    enum Event: Sendable {
        case serial(target: Int, device: String, bytes: [UInt8])
        case qemuExited(target: Int, status: ExitStatus)
        case commandExited(ExitStatus)
        case timeout, expired, readinessTimeout(target: Int)
        case idleCheck
        case stepTimeout(token: Int)
        case sidecarExited(target: Int, name: String, test: Bool, status: ExitStatus)
        case signal(Int32)
        case recycled
    }

    public var config: RunConfiguration
    let catalog: MachineCatalog

    public init(config: RunConfiguration, catalog: MachineCatalog) {
        self.config = config
        self.catalog = catalog
    }

    /// Plans every target (nothing started yet): an error here is bad input.
    public func prepare(_ runnables: [RunnableTarget], runDirectory: String, yamlDirectory: @escaping (Drive) -> String?) async throws
        -> [(RunnableTarget, LaunchPlan, String)]
    {
        var out: [(RunnableTarget, LaunchPlan, String)] = []
        var problems: [Diagnostic] = []
        for r in runnables {
            let layout = config.supervised?.layout ?? .run(runDirectory, namespace: r.namespace, name: r.name)
            let dir = layout.directory
            guard let profile = catalog.lookup(r.target.qemu.profileName) else { continue }
            // <dir> holds vtarget's sockets; <dir>/qemu is QEMU's own (its cwd,
            // firmware, GDB socket), handed to QEMU's uid when vtarget is root,
            // so a compromised QEMU cannot replace the sockets clients use.
            let dropping = config.sandbox && QEMUSandbox.isRoot
            let qemuDir = layout.qemuDirectory
            if mkdir(dir, dropping ? 0o711 : 0o700) != 0 || mkdir(qemuDir, 0o700) != 0 {
                throw RuntimeError("cannot create \(qemuDir): \(String(cString: strerror(errno)))")
            }
            if dropping { chmod(dir, 0o711) }
            let resolver = DriveResolver(instanceDirectory: qemuDir, materialize: true, copyFirmware: dropping, environment: config.environment)
            do {
                let drives = try await resolver.resolve(r, yamlDirectory: yamlDirectory)
                if dropping { try QEMUSandbox.handOver(qemuDir) }
                var target = r.target
                target.metadata.name = r.name  // the instance's name: QEMU's -name, output prefixes, variables
                var options = config.launch
                if config.supervised?.snapshot == true, profile.snapshots {
                    options.snapshotImage = try await Self.createSnapshotImage(qemuDir, environment: config.environment)
                    if dropping { try QEMUSandbox.handOver(qemuDir) }
                }
                let planner = LaunchPlanner(host: config.host, options: options)
                let plan = try planner.plan(target, profile: profile, drives: drives, instanceDirectory: qemuDir)
                for path in layout.sockets(devices: plan.channels.filter { $0.role != .qmp }.map(\.device)) {
                    try RuntimeDirectory.checkSocketPath(path)
                }
                if let gdb = plan.gdbSocketPath { try RuntimeDirectory.checkSocketPath(gdb) }
                out.append((r, plan, dir))
            } catch let e as DiagnosticError {
                problems += e.diagnostics
            }
        }
        if !problems.isEmpty { throw DiagnosticError(problems) }
        return out
    }

    /// Runs prepared targets to the end; returns the process exit code.
    public func run(_ prepared: [(RunnableTarget, LaunchPlan, String)]) async -> Int32 {
        let (events, sink) = AsyncStream<Event>.makeStream()
        // SIGUSR1 is the supervisor's "released to the pool": forget the session.
        let signals = SignalWatch([SIGINT, SIGTERM, SIGHUP, SIGUSR1]) { sink.yield($0 == SIGUSR1 ? .recycled : .signal($0)) }
        defer { signals.cancel() }

        // Spawn every QEMU first: the rest happens while they initialise.
        var targets: [TargetProcess] = []
        var code: Int32 = ExitCode.failure
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var commandChild: ChildProcess?
        var sidecars: [ChildProcess] = []
        var records: [InstanceRecord] = []
        /// The CAN buses of the run's targets (each its own host process), by name.
        var buses: [String: (port: Int, socket: String)] {
            targets.reduce(into: [:]) { all, t in for (name, r) in t.buses { all[name] = (r.port, r.socket) } }
        }
        var report = JUnitReport()
        var releases = 0
        var outcome = ShimStatus.failed(.startFailed, "")
        let status = config.supervised.map { ShimStatusWriter(path: $0.statusPath) }
        let clock = ContinuousClock()
        let started = clock.now
        func since(_ t: ContinuousClock.Instant) -> Double {
            let d = clock.now - t
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }

        do {
            for (_, plan, dir) in prepared {
                guard let qemu = ExecutableSearch.find(plan.binary, environment: config.environment) else {
                    throw RuntimeError("\(plan.binary) not found in PATH; install QEMU (make setup, or apt-get install qemu-system-arm qemu-system-x86)")
                }
                targets.append(try await TargetProcess.spawn(plan: plan, directory: dir, qemuPath: qemu,
                                                             sandbox: await QEMUSandbox.policy(enabled: config.sandbox)))
            }
            let streams = prepared.reduce(0) { $0 + $1.1.serialChannels.count }
            let output = SerialOutput(prefixed: streams > 1, names: targets.map(\.name), enabled: config.supervised == nil)
            for (i, t) in targets.enumerated() {
                for w in t.plan.warnings { note("\(t.name): warning: \(w)") }
                do {
                    let serialDevices = Set(t.plan.serialChannels.map(\.device))
                    try await t.connect(group: group, startRunning: true, logRotation: config.logRotation,
                                        environment: config.environment) { device, bytes in
                        if serialDevices.contains(device) { sink.yield(.serial(target: i, device: device, bytes: bytes)) }
                    }
                } catch {
                    let status = await t.child.waitForExit()
                    let why = "QEMU failed to start (\(status))"
                    report.cases.append(.init(classname: t.name, name: "boot", seconds: since(started), failure: why, output: t.stderrText))
                    outcome = .failed(.startFailed, why)
                    outcome.exit(status)
                    outcome.stderrTail = ShimStatus.tail(t.stderrText)
                    throw RuntimeError("\(t.name): \(why)\n" + t.stderrText.trimmedTrailingNewlines)
                }
                report.cases.append(.init(classname: t.name, name: "boot", seconds: since(started)))

                let child = t.child
                Task { sink.yield(.qemuExited(target: i, status: await child.waitForExit())) }
                records.append(InstanceRecord(
                    name: t.name, namespace: prepared[i].0.namespace, ownerPID: getpid(), qemuPID: child.pid,
                    qemuStartTime: InstanceRecord.startTime(of: child.pid) ?? 0, phase: .running,
                    ready: prepared[i].0.lifecycle.readiness == nil,
                    serialDevices: t.plan.serialChannels.map(\.device), directory: t.directory, rfc2217: t.rfc2217Ports,
                    powerdown: catalog.lookup(t.plan.profile)?.gracefulPowerdown ?? false,
                    supervised: config.supervised == nil ? nil : true))
                records[i].write()
                if records[i].ready { await takeSnapshot(t) }
                status?.update { s in
                    s.phase = .running
                    s.qemuPID = child.pid
                    s.startedAt = ShimStatus.now
                    s.directory = t.directory
                    s.ready = records[i].ready
                    if s.ready { s.readyAt = s.startedAt }
                }
            }

            /// Pool members: the state to return to on release, taken once Ready.
            func takeSnapshot(_ t: TargetProcess) async {
                guard t.plan.snapshotImage != nil, let qmp = t.qmp else { return }
                let r = try? await qmp.execute("human-monitor-command", arguments: .object(["command-line": .string("savevm vt-ready")]))
                if let r, (r.stringValue ?? "").isEmpty {
                    status?.update { $0.snapshot = true }
                } else {
                    note("\(t.name): savevm failed: \(r?.stringValue ?? "no answer"); the pool restarts it instead")
                }
            }
            var timers: [Task<Void, Never>] = []
            defer { timers.forEach { $0.cancel() } }
            func after(_ seconds: Double, _ e: Event) {
                timers.append(Task {
                    try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                    if !Task.isCancelled { sink.yield(e) }
                })
            }
            if let t = config.timeoutSeconds { after(t, .timeout) }
            let ttl = config.ttlSeconds ?? prepared.compactMap(\.0.lifecycle.ttlSeconds).min()
            if let ttl { after(ttl, .expired) }
            // idleTTL: once a second, count the clients of each target that has one.
            var lastClient = [Double](repeating: monotonicSeconds(), count: prepared.count)
            let idleLimits = prepared.map(\.0.lifecycle.idleTTLSeconds)
            if idleLimits.contains(where: { $0 != nil }) { after(1, .idleCheck) }

            let until = try config.until.map { try Regex($0) }
            var watch = MatchWindows()
            var pendingReady: [Int: (Regex<AnyRegexOutput>, String)] = [:]
            for (i, p) in prepared.enumerated() {
                if let r = p.0.lifecycle.readiness {
                    pendingReady[i] = (try Regex(r.pattern), r.device)
                    after(r.timeoutSeconds, .readinessTimeout(target: i))
                }
            }
            // Declarative tests, in order, once every target is Ready.
            var queue: [(target: Int, test: DeclarativeTest)] = []
            for (i, p) in prepared.enumerated() { for t in p.0.lifecycle.tests { queue.append((i, t)) } }
            var current = 0, step = 0, token = 0
            var testStart = clock.now
            var expecting: (regex: Regex<AnyRegexOutput>, pattern: String, device: String, timeout: Double)?
            var testBuffer: [UInt8] = []
            var testsDone = queue.isEmpty
            var testFailures = 0
            func defaultDevice(_ i: Int) -> String { targets[i].plan.serialChannels.first?.device ?? "" }
            func finishTest(_ failure: String?) async {
                let (i, t) = queue[current]
                var output: String?
                if failure != nil {
                    output = String(decoding: await targets[i].recentOutput(), as: UTF8.self)
                    testFailures += 1
                    note("\(targets[i].name): test \(t.name) failed: \(failure!)")
                }
                report.cases.append(.init(classname: targets[i].name, name: t.name, seconds: since(testStart), failure: failure, output: output))
                current += 1
                step = 0
                expecting = nil
                testStart = clock.now
            }
            func advanceTests() async {
                while !testsDone {
                    guard current < queue.count else { testsDone = true; return }
                    let (i, t) = queue[current]
                    guard step < t.steps.count else { await finishTest(nil); continue }
                    switch t.steps[step] {
                    case .send(let text, let device):
                        let dev = device ?? defaultDevice(i)
                        targets[i].hubs.first { $0.name == dev }?.send(Array(text.utf8))
                        step += 1
                    case .expect(let pattern, let timeout, let device):
                        guard let regex = try? Regex(pattern) else { await finishTest("invalid pattern"); continue }
                        expecting = (regex, pattern, device ?? defaultDevice(i), timeout)
                        testBuffer = []
                        token += 1
                        after(timeout, .stepTimeout(token: token))
                        return
                    }
                }
            }

            // Sidecars start with the command: once every target is Ready and
            // the declarative tests are done. Test sidecars decide the run.
            var sidecarsStarted = false
            var testSidecarsRunning = 0
            var sidecarFailures = 0
            let testSidecars = prepared.reduce(0) { $0 + $1.0.lifecycle.sidecars.filter { $0.role == .test }.count }
            func startSidecars() async throws {
                guard !sidecarsStarted else { return }
                sidecarsStarted = true
                for (i, p) in prepared.enumerated() {
                    for sc in p.0.lifecycle.sidecars {
                        let child = try await spawnSidecar(sc, of: targets[i], all: targets, buses: buses)
                        sidecars.append(child)
                        if sc.role == .test { testSidecarsRunning += 1 }
                        let name = sc.name, isTest = sc.role == .test
                        Task { sink.yield(.sidecarExited(target: i, name: name, test: isTest, status: await child.waitForExit())) }
                    }
                }
            }

            func startCommandIfReady() async throws {
                guard pendingReady.isEmpty else { return }
                if !testsDone, expecting == nil, current == 0, step == 0 { await advanceTests() }
                if testsDone { try await startSidecars() }
                guard testsDone, !config.command.isEmpty, commandChild == nil else { return }
                commandChild = try await spawnCommand(targets, buses: buses)
                let c = commandChild!
                Task { sink.yield(.commandExited(await c.waitForExit())) }
            }
            /// With tests or test sidecars, and neither a command nor --until,
            /// the run ends when they do.
            func testsFinishedCode() -> Int32? {
                guard !queue.isEmpty || testSidecars > 0, testsDone, sidecarsStarted, testSidecarsRunning == 0,
                      config.command.isEmpty, config.until == nil else { return nil }
                return testFailures == 0 && sidecarFailures == 0 ? ExitCode.success : ExitCode.failure
            }
            try await startCommandIfReady()
            /// How a run that ends with its tests reads as a phase.
            func testsOutcome(_ end: Int32) -> ShimStatus {
                end == 0 ? .succeeded(.testsPassed, "every test passed")
                    : .failed(.testsFailed, "\(testFailures + sidecarFailures) test(s) failed")
            }
            if let end = testsFinishedCode() { code = end; outcome = testsOutcome(end) } else {

            loop: for await event in events {
                switch event {
                case .serial(let i, let device, let bytes):
                    output.write(target: i, device: device, bytes)
                    if let e = expecting, queue[current].target == i, e.device == device {
                        testBuffer += bytes
                        if String(decoding: testBuffer, as: UTF8.self).contains(e.regex) {
                            expecting = nil
                            step += 1
                            await advanceTests()
                            try await startCommandIfReady()
                            if let end = testsFinishedCode() { code = end; outcome = testsOutcome(end); break loop }
                        }
                    }
                    // Text is made only while something waits for a pattern.
                    guard until != nil || pendingReady[i]?.1 == device else { continue }
                    let text = watch.append(target: i, device: device, bytes)
                    if let (regex, dev) = pendingReady[i], dev == device, text.contains(regex) {
                        pendingReady[i] = nil
                        records[i].ready = true
                        records[i].write()
                        await takeSnapshot(targets[i])
                        status?.update { $0.ready = true; $0.readyAt = ShimStatus.now }
                        note("\(targets[i].name) is Ready")
                        report.cases.append(.init(classname: targets[i].name, name: "readiness", seconds: since(started)))
                        try await startCommandIfReady()
                        if let end = testsFinishedCode() { code = end; outcome = testsOutcome(end); break loop }
                    }
                    if let until, text.contains(until) {
                        output.flush()
                        report.cases.append(.init(classname: targets[i].name, name: "until /\(config.until!)/", seconds: since(started)))
                        code = ExitCode.success
                        outcome = .succeeded(.untilMatched, "output matched /\(config.until!)/")
                        break loop
                    }
                case .qemuExited(let i, let status):
                    output.flush()
                    let t = targets[i]
                    if status == .exited(0), config.until == nil, config.command.isEmpty {
                        note("\(t.name): QEMU exited")
                        code = ExitCode.success
                        outcome = .succeeded(.qemuExited, "QEMU exited with status 0")
                    } else {
                        note("\(t.name): QEMU exited unexpectedly (\(status))" + stderrBlock(t))
                        report.cases.append(.init(classname: t.name, name: "run", seconds: since(started),
                                                  failure: "QEMU exited unexpectedly (\(status))", output: t.stderrText))
                        code = ExitCode.failure
                        outcome = .failed(.qemuExited, "QEMU exited unexpectedly (\(status))")
                        outcome.exit(status)
                        outcome.stderrTail = ShimStatus.tail(t.stderrText)
                    }
                    break loop
                case .commandExited(let status):
                    output.flush()
                    code = status.shellCode
                    report.cases.append(.init(classname: "command", name: config.command.joined(separator: " "), seconds: since(started),
                                              failure: code == 0 ? nil : "ended with \(status)",
                                              output: code == 0 ? nil : String(decoding: await targets.first?.recentOutput() ?? [], as: UTF8.self)))
                    if code != 0 { note("command \(config.command[0]) ended with \(status)") }
                    outcome = code == 0 ? .succeeded(.commandSucceeded, "command ended with 0") : .failed(.commandFailed, "command ended with \(status)")
                    break loop
                case .timeout:
                    output.flush()
                    let why = "timed out after \(format(config.timeoutSeconds!))" + (config.until.map { " waiting for /\($0)/" } ?? "")
                    note(why)
                    report.cases.append(.init(classname: "run", name: config.until.map { "until /\($0)/" } ?? "timeout", seconds: since(started), failure: why,
                                              output: String(decoding: await targets.first?.recentOutput() ?? [], as: UTF8.self)))
                    code = ExitCode.failure
                    outcome = .failed(.timeout, why)
                    break loop
                case .expired:
                    output.flush()
                    note("expired: the TTL of \(format(ttl!)) was reached")
                    report.cases.append(.init(classname: "run", name: "ttl", seconds: since(started), failure: "expired: the TTL of \(format(ttl!)) was reached",
                                              output: String(decoding: await targets.first?.recentOutput() ?? [], as: UTF8.self)))
                    code = ExitCode.failure
                    outcome = ShimStatus(phase: .expired, reason: .ttlExpired, message: "the TTL of \(format(ttl!)) was reached")
                    break loop
                case .idleCheck:
                    var idleFor: (Int, Double)?
                    for (i, limit) in idleLimits.enumerated() {
                        guard let limit else { continue }
                        if await targets[i].clientCount() > 0 { lastClient[i] = monotonicSeconds() }
                        else if monotonicSeconds() - lastClient[i] >= limit { idleFor = (i, limit) }
                    }
                    guard let (i, limit) = idleFor else { after(1, .idleCheck); continue }
                    output.flush()
                    let why = "expired: no client on any endpoint of \(targets[i].name) for \(format(limit)) (idleTTL)"
                    note(why)
                    report.cases.append(.init(classname: targets[i].name, name: "idleTTL", seconds: since(started), failure: why))
                    code = ExitCode.failure
                    outcome = ShimStatus(phase: .expired, reason: .idleTTLExpired, message: why)
                    break loop
                case .sidecarExited(let i, let name, let isTest, let status):
                    let failed = status != .exited(0)
                    if isTest {
                        testSidecarsRunning -= 1
                        if failed { sidecarFailures += 1 }
                        let log = targets[i].layout.sidecarLog(name)
                        var output: String?
                        if failed {
                            // The sidecar's own output, then what the target said meanwhile.
                            output = String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self)
                                + "\n--- \(targets[i].name) serial output ---\n"
                                + String(decoding: await targets[i].recentOutput(), as: UTF8.self)
                        }
                        report.cases.append(.init(classname: targets[i].name, name: "sidecar \(name)", seconds: since(started),
                                                  failure: failed ? "ended with \(status)" : nil, output: output))
                        note("\(targets[i].name): test sidecar \(name) " + (failed ? "failed (\(status))" : "passed"))
                    } else if failed {
                        note("\(targets[i].name): helper sidecar \(name) ended with \(status)")
                    }
                    if let end = testsFinishedCode() { code = end; outcome = testsOutcome(end); break loop }
                case .stepTimeout(let t):
                    guard t == token, let e = expecting else { continue }
                    await finishTest("no /\(e.pattern)/ on \(e.device) within \(format(e.timeout))")
                    await advanceTests()
                    try await startCommandIfReady()
                    if let end = testsFinishedCode() { code = end; outcome = testsOutcome(end); break loop }
                case .readinessTimeout(let i):
                    guard pendingReady[i] != nil else { continue }
                    output.flush()
                    let r = prepared[i].0.lifecycle.readiness!
                    let why = "no /\(r.pattern)/ on \(r.device) within \(format(r.timeoutSeconds))"
                    report.cases.append(.init(classname: targets[i].name, name: "readiness", seconds: since(started), failure: why,
                                              output: String(decoding: await targets[i].recentOutput(), as: UTF8.self)))
                    note("\(targets[i].name): not Ready: \(why)")
                    code = ExitCode.failure
                    outcome = .failed(.readinessTimeout, why)
                    break loop
                case .recycled:
                    releases += 1
                    let report = await release(targets, generation: releases)
                    status?.update { $0.release = report }
                    note("released to the pool: " + (report.restored ? "snapshot restored" : report.message ?? "not restored") + "; serial replay and clients reset")
                case .signal(let s):
                    output.flush()
                    note("interrupted by signal \(s); stopping")
                    code = 128 + s
                    outcome = .succeeded(.stopped, "stopped by signal \(s)")
                    break loop
                }
            }
            }
        } catch let e as DiagnosticError {
            note(e.description)
            code = ExitCode.badInput
            outcome = .failed(.invalidSpec, e.description)
        } catch {
            note("\(error)")
            code = ExitCode.failure
            outcome.message = "\(error)"
        }

        // Tear down: the command and sidecars first (they may be talking to the targets), then every QEMU.
        if let c = commandChild, c.exitStatus == nil {
            _ = await c.terminate(grace: 2)
        }
        for sc in sidecars where sc.exitStatus == nil { _ = await sc.terminate(grace: 2) }
        await withTaskGroup(of: Void.self) { g in
            for t in targets { g.addTask { _ = await t.stop() } }
        }
        if let path = config.junitPath {
            do { try report.write(to: path) } catch { note("\(error)") }
        }
        try? await group.shutdownGracefully()
        if config.supervised != nil {
            for t in targets { RuntimeDirectory.removeTree(t.directory) }
        }
        status?.update { s in
            let started = (s.startedAt, s.readyAt, s.qemuPID, s.ready)
            s = outcome
            (s.startedAt, s.readyAt, s.qemuPID, s.ready) = started
            s.finishedAt = ShimStatus.now
        }
        return code
    }

    /// Back to the pool (the supervisor's SIGUSR1): the guest stops, every
    /// serial hub drops the previous claimer's clients, replay and pending
    /// output, then `loadvm vt-ready` and `cont`, in that order, so no byte of
    /// the restored guest reaches the previous claimer.
    private func release(_ targets: [TargetProcess], generation: Int) async -> ReleaseReport {
        var failure: String?
        for t in targets {
            guard let qmp = t.qmp else { failure = "\(t.name): no QMP connection"; continue }
            _ = try? await qmp.execute("stop")
            for h in t.hubs { await h.reset() }
            guard config.supervised?.snapshot == true, t.plan.snapshotImage != nil else {
                failure = "\(t.name) has no snapshot"
                continue
            }
            do {
                let r = try await qmp.execute("human-monitor-command", arguments: .object(["command-line": .string("loadvm vt-ready")]))
                if let text = r.stringValue, !text.isEmpty { failure = "loadvm: " + text.trimmedTrailingNewlines }
                _ = try await qmp.execute("cont")
            } catch {
                failure = "\(t.name): \(error)"
            }
        }
        return ReleaseReport(generation: generation, restored: failure == nil, message: failure)
    }

    /// `qemu-img create`: a 64 MiB scratch qcow2 that holds only vmstate.
    static func createSnapshotImage(_ qemuDir: String, environment: [String: String]) async throws -> String {
        let path = qemuDir + "/snapshot.qcow2"
        guard let tool = ExecutableSearch.find("qemu-img", environment: environment) else {
            throw RuntimeError("qemu-img not found (apt-get install qemu-utils); pools that recycle by snapshot need it")
        }
        let out = try await ProcessCapture.run(deadline: 10) { w in
            SpawnRequest(executable: tool, arguments: ["create", "-q", "-f", "qcow2", path, "64M"], environment: [], fds: [-1, w, w])
        }
        guard out.status == .exited(0) else { throw RuntimeError("qemu-img create \(path): \(out.output)") }
        return path
    }

    private func stderrBlock(_ t: TargetProcess) -> String {
        let text = t.stderrText.trimmedTrailingNewlines
        return text.isEmpty ? "" : "; QEMU said:\n" + text
    }

    /// The environment of `run -- CMD` and of sidecars: every endpoint.
    private func endpointEnvironment(_ targets: [TargetProcess], buses: [String: (Int, String)]) -> [String: String] {
        var env = config.environment
        for (bus, (port, socket)) in buses {
            env["VTARGET_CAN_\(EndpointEnvironment.key(bus))"] = "127.0.0.1:\(port)"
            env["VTARGET_CAN_\(EndpointEnvironment.key(bus))_SOCKET"] = socket
        }
        for (k, v) in EndpointEnvironment.variables(targets.map { ($0.name, $0.plan, $0.directory, $0.rfc2217Ports) }) { env[k] = v }
        return env
    }

    /// The command of `run -- CMD`, with every endpoint in its environment.
    private func spawnCommand(_ targets: [TargetProcess], buses: [String: (Int, String)]) async throws -> ChildProcess {
        let env = endpointEnvironment(targets, buses: buses)
        guard let exe = ExecutableSearch.find(config.command[0], environment: env) else {
            throw RuntimeError("command not found: \(config.command[0])")
        }
        return try await ChildProcess.spawn(SpawnRequest(
            executable: exe, arguments: Array(config.command.dropFirst()),
            environment: env.map { "\($0.key)=\($0.value)" }, fds: [0, 1, 2],
            newSession: false, parentDeathSignal: SIGTERM))
    }

    /// A sidecar: a host process with the endpoints (its own target's as the
    /// unprefixed names) and its `env`, output in `logs/sidecar-NAME.log`.
    private func spawnSidecar(_ sc: Sidecar, of target: TargetProcess, all: [TargetProcess], buses: [String: (Int, String)]) async throws -> ChildProcess {
        var env = endpointEnvironment(all, buses: buses)
        for (k, v) in EndpointEnvironment.variables([(target.name, target.plan, target.directory, target.rfc2217Ports)]) { env[k] = v }
        for (k, v) in sc.env { env[k] = v }
        guard let exe = ExecutableSearch.find(sc.command[0], environment: env) else {
            throw RuntimeError("\(target.name): sidecar \(sc.name): command not found: \(sc.command[0])")
        }
        let logPath = target.layout.sidecarLog(sc.name)
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard log >= 0 else { throw RuntimeError("cannot create \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(log) }
        return try await ChildProcess.spawn(SpawnRequest(
            executable: exe, arguments: Array(sc.command.dropFirst()),
            environment: env.map { "\($0.key)=\($0.value)" }, fds: [-1, log, log],
            newSession: true, parentDeathSignal: SIGTERM))
    }

    private func format(_ seconds: Double) -> String {
        seconds < 1 ? "\(Int(seconds * 1000))ms" : (seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s")
    }
}

/// vtarget's own messages: on stderr, apart from the serial stream on stdout.
func note(_ message: String) {
    FileDescriptors.writeAll(2, Array(("vtarget: " + message + "\n").utf8))
}

extension String {
    var trimmedTrailingNewlines: String {
        var s = Substring(self)
        while s.last == "\n" || s.last == "\r" { s = s.dropLast() }
        return String(s)
    }
}

/// The endpoint variables of the contract, for sidecars and `run -- CMD`.
public enum EndpointEnvironment {
    public static func key(_ s: String) -> String {
        String(s.uppercased().map { $0 == "-" || $0 == "." ? "_" : $0 })
    }

    public static func variables(_ targets: [(name: String, plan: LaunchPlan, directory: String, rfc2217: [String: Int])]) -> [String: String] {
        var env: [String: String] = [:]
        for t in targets {
            var own: [String: String] = [:]
            for c in t.plan.channels where c.role != .qmp {
                own["SERIAL_\(key(c.device))"] = InstanceLayout(directory: t.directory).serialSocket(c.device)
            }
            for (device, port) in t.rfc2217 { own["SERIAL_\(key(device))_RFC2217"] = "127.0.0.1:\(port)" }
            if let gdb = t.plan.gdbSocketPath { own["GDB"] = gdb }
            own["QMP"] = InstanceLayout(directory: t.directory).qmpSocket
            for (k, v) in own {
                if targets.count == 1 { env["VTARGET_" + k] = v }
                env["VTARGET_\(key(t.name))_" + k] = v
            }
        }
        env["VTARGET_NAME"] = targets.map(\.name).joined(separator: ",")
        return env
    }
}

/// The recent output of each serial device, as text to match against. Only
/// the new bytes and a tail before them are searched, so matching costs the
/// size of the new output, not of a 64 KiB window per chunk.
struct MatchWindows {
    static let tail = 4 << 10
    var buffers: [String: [UInt8]] = [:]

    mutating func append(target: Int, device: String, _ bytes: [UInt8]) -> String {
        let key = "\(target)/\(device)"
        var b = buffers[key, default: []]
        b += bytes
        let text = String(decoding: b, as: UTF8.self)
        if b.count > Self.tail { b.removeFirst(b.count - Self.tail) }
        buffers[key] = b
        return text
    }
}

/// Serial bytes to stdout: raw for one stream, `name/device| ` per line for several.
final class SerialOutput: @unchecked Sendable {
    let prefixed: Bool
    let names: [String]
    /// False under the supervisor: the logs keep the output, nobody reads stdout.
    let enabled: Bool
    private var partial: [String: [UInt8]] = [:]

    init(prefixed: Bool, names: [String], enabled: Bool = true) {
        self.prefixed = prefixed
        self.names = names
        self.enabled = enabled
    }

    func write(target: Int, device: String, _ bytes: [UInt8]) {
        guard enabled else { return }
        guard prefixed else { return writeAll(bytes) }
        let key = "\(names[target])/\(device)"
        var pending = partial[key, default: []] + bytes
        while let nl = pending.firstIndex(of: 0x0A) {
            writeAll(Array("\(key)| ".utf8) + pending[...nl])
            pending.removeFirst(nl + 1)
        }
        partial[key] = pending
    }

    func flush() {
        for (key, rest) in partial where !rest.isEmpty { writeAll(Array("\(key)| ".utf8) + rest + [0x0A]) }
        partial = [:]
    }

    private func writeAll(_ bytes: [UInt8]) { FileDescriptors.writeAll(1, bytes) }
}

/// SIGINT/SIGTERM/SIGHUP as events rather than process death.
///
/// A real handler writes the signal number to a pipe that a thread of its
/// own reads. Dispatch signal sources are not used: on Linux they set
/// SIG_IGN and block the signal only in one thread, so a signal the kernel
/// hands to any other thread is discarded (seen: a supervisor's SIGTERM to a
/// freshly started shim was lost that way).
final class SignalWatch: @unchecked Sendable {
    private let signals: [Int32]
    private let readEnd: Int32
    private let writeEnd: Int32

    init(_ signals: [Int32], _ handler: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        let ends: (Int32, Int32) = (try? makePipe()) ?? (-1, -1)
        let fds: [Int32] = [ends.0, ends.1]
        (readEnd, writeEnd) = ends
        SignalPipe.writeFD = fds[1]
        let box = Unmanaged.passRetained(Reader(fd: fds[0], handler: handler)).toOpaque()
        var thread = pthread_t()
        if pthread_create(&thread, nil, { raw in
            let reader = Unmanaged<Reader>.fromOpaque(raw!).takeRetainedValue()
            var b: UInt8 = 0
            while true {
                let n = read(reader.fd, &b, 1)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return nil }
                if b == 0 { return nil }  // cancel()
                reader.handler(Int32(b))
            }
        }, box) == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<Reader>.fromOpaque(box).release()
        }
        for s in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                let saved = errno
                var b = UInt8(truncatingIfNeeded: sig)
                _ = write(SignalPipe.writeFD, &b, 1)
                errno = saved
            }
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(s, &action, nil)
        }
    }

    func cancel() {
        for s in signals { signal(s, SIG_IGN) }
        var zero: UInt8 = 0
        _ = write(writeEnd, &zero, 1)
        close(writeEnd)
    }

    private final class Reader: @unchecked Sendable {
        let fd: Int32
        let handler: @Sendable (Int32) -> Void
        init(fd: Int32, handler: @escaping @Sendable (Int32) -> Void) {
            self.fd = fd
            self.handler = handler
        }
    }
}

/// The write end the C signal handler uses (it can capture nothing).
enum SignalPipe {
    /// Set once, before any handler is installed; one SignalWatch per process.
    nonisolated(unsafe) static var writeFD: Int32 = -1
}
