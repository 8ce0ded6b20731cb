#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Endpoints
import HostOS
import InstanceContract
import NIOCore
import NIOPosix
import QEMULaunch
import QMP
import Sandbox
import SessionCore
import Synchronization
import TargetSpec
import YAMLTree

extension RunSession {
    /// One run in progress: the processes, endpoints and reports the shell
    /// owns, and the machine that decides. Used by one task only.
    final class Live {
        let session: RunSession
        let prepared: [PreparedTarget]
        let sink: AsyncStream<SessionEvent>.Continuation
        /// Made in `boot` once every QEMU is spawned: starting its thread
        /// (and the runtime's first look-ups of NIO's types) took ~0.5 ms
        /// that QEMU's exec waited for. Nothing reads it before.
        private(set) var group: MultiThreadedEventLoopGroup!
        var machine: SessionMachine
        var targets: [TargetProcess] = []
        var records: [InstanceRecord] = []
        var command: ChildProcess?
        var sidecars: [ChildProcess] = []
        var output = SerialOutput(prefixed: false, names: [], enabled: false)
        var report = JUnitReport()
        var timers: [Task<Void, Never>] = []
        /// The `vt-ready` snapshot was taken (pool members): a release can restore it.
        var snapshotTaken = false
        var code: Int32 = ExitCode.failure
        var outcome = ShimStatus.failed(.startFailed, "")
        /// A target's runtime directory found gone while it ran: the run ends Failed.
        var removedDirectory: String?
        let status: ShimStatusWriter?
        let start: StartGuard
        /// Every event is handled there, with a deadline; made with `group`.
        private(set) var matcher: MachineThread!
        /// Targets whose QEMU said STOP or RESUME, for `followRunStates`.
        let runStates = AsyncStream<(Int, TargetProcess)>.makeStream()
        var runStateTask: Task<Void, Never>?
        /// A pool release is stopping and continuing the guests.
        let releasing = Releasing()

        final class Releasing: Sendable {
            private let flag = Mutex(false)
            var now: Bool { flag.withLock { $0 } }
            func set(_ on: Bool) { flag.withLock { $0 = on } }
        }

        var config: RunConfiguration { session.config }

        init(session: RunSession, prepared: [PreparedTarget], sink: AsyncStream<SessionEvent>.Continuation, start: StartGuard) throws {
            self.session = session
            self.start = start
            self.prepared = prepared
            self.sink = sink
            machine = try SessionMachine(plan: SessionPlan(prepared, session.config), now: monotonicSeconds())
            status = session.config.supervised.map { ShimStatusWriter(path: $0.statusPath) }
        }

        /// Spawns every QEMU first (the rest happens while they initialise),
        /// then connects each. False when the run ended during boot.
        func boot() async -> Bool {
            defer { start.started() }
            var spawnFailure: (any Error)?
            do {
                for (_, plan, dir) in prepared {
                    guard let qemu = ExecutableSearch.find(plan.binary, environment: config.environment) else {
                        throw RuntimeError("\(plan.binary) not found in PATH; install QEMU (make setup, or apt-get install qemu-system-arm qemu-system-x86)",
                                           code: .notFound)
                    }
                    let t = try await TargetProcess.spawn(plan: plan, directory: dir, qemuPath: qemu,
                                                          sandbox: try await QEMUSandbox.policy(enabled: config.sandbox,
                                                                                               qemuDirectory: plan.workingDirectory,
                                                                                               hostNetwork: plan.hostNetwork,
                                                                                               accel: plan.accel, qemuPath: qemu))
                    targets.append(t)
                    start.spawned(t.child)
                }
            } catch {
                spawnFailure = error
            }
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            self.group = group
            matcher = MachineThread(deadlines: group.next())
            runStateTask = followRunStates()
            do {
                if let spawnFailure { throw spawnFailure }
                let streams = prepared.reduce(0) { $0 + $1.1.serialChannels.count }
                output = SerialOutput(prefixed: streams > 1, names: targets.map(\.name), enabled: config.supervised == nil)
                for i in targets.indices {
                    guard try await connect(i) else { return false }
                }
                try await feed(.started)
            } catch {
                if let signal = start.signal { try? await feed(.signal(signal)) } else { await fail(error) }
            }
            return machine.finished == nil
        }

        /// Connects target `i`'s endpoints and QMP; false when QEMU died first.
        private func connect(_ i: Int) async throws -> Bool {
            let t = targets[i]
            for w in t.plan.warnings { note("\(t.name): warning: \(w)") }
            let sink = self.sink
            do {
                let serialDevices = Set(t.plan.serialChannels.map(\.device))
                let runStates = self.runStates.1
                let output = self.output
                try await t.connect(group: group, startRunning: !config.startPaused && config.supervised?.startPaused != true,
                                    logRotation: config.logRotation,
                                    environment: config.environment, onQMPEvent: { e in
                    if let name = e["event"]?.stringValue, name == "STOP" || name == "RESUME" { runStates.yield((i, t)) }
                }, powerButton: session.catalog.lookup(t.plan.profile)?.gracefulPowerdown ?? false,
                   onBusFailure: { sink.yield(.startFailed("\($0)")) }, capture: config.capture) { [capture = config.capture] device, bytes in
                    guard serialDevices.contains(device) else { return }
                    output.write(target: i, device: device, bytes)
                    sink.yield(.serial(target: i, device: device, bytes: bytes))
                    capture?.serial(target: t.name, device: device, bytes: bytes)
                }
            } catch {
                let status = await t.child.waitForExit()
                if let signal = start.signal {
                    try await feed(.signal(signal))
                } else {
                    try await feed(.bootFailed(target: i, status: status, stderr: t.stderrText))
                }
                return false
            }
            let child = t.child
            // The stderr tail is read when the event is handled, not here: by then its pipe is drained.
            Task { sink.yield(.qemuExited(target: i, status: await child.waitForExit(), stderr: "")) }
            records.append(InstanceRecord(
                name: t.name, namespace: prepared[i].0.namespace, ownerPID: getpid(), qemuPID: child.pid,
                qemuStartTime: Processes.startTime(of: child.pid) ?? 0, phase: .running, ready: false,
                serialDevices: t.plan.serialChannels.map(\.device), directory: t.directory, rfc2217: t.rfc2217Ports,
                powerdown: session.catalog.lookup(t.plan.profile)?.gracefulPowerdown ?? false,
                supervised: config.supervised == nil ? nil : true, gdbSocket: t.plan.gdbSocketPath))
            records[i].qemuDirectory = t.plan.workingDirectory.isEmpty ? nil : t.plan.workingDirectory
            records[i].write()
            status?.update { s in
                s.phase = .running
                s.qemuPID = child.pid
                s.startedAt = ShimStatus.now
                s.directory = t.directory
            }
            try await feed(.booted(target: i))
            // Left in -S by `start --paused`: no STOP event comes, so say it here.
            if config.supervised?.startPaused == true { try await feed(.runState(target: i, paused: true)) }
            return true
        }

        /// After each STOP or RESUME, in order, QEMU's run state: `paused` is
        /// a `stop` (a pause), where savevm, loadvm and a release's stop say
        /// `save-vm`, `restore-vm` or are over by the time of the answer.
        private func followRunStates() -> Task<Void, Never> {
            let (changes, sink, releasing) = (runStates.0, self.sink, self.releasing)
            return Task {
                for await (i, t) in changes {
                    guard let qmp = t.qmp, !releasing.now else { continue }
                    let state = await withDeadline(5) { try? await qmp.execute("query-status") }
                    guard let status = state??["status"]?.stringValue else { continue }
                    sink.yield(.runState(target: i, paused: status == "paused"))
                }
            }
        }

        /// Feeds events until the machine finishes.
        func drive(_ events: AsyncStream<SessionEvent>) async {
            let watch = watchDirectories()
            defer { watch.cancel() }
            let agents = watchGuestAgents()
            defer { agents.cancel() }
            for await var event in events {
                if case .qemuExited(let i, let status, _) = event {
                    event = .qemuExited(target: i, status: status, stderr: targets[i].stderrText)
                }
                if case .signal = event, removedDirectory == nil {
                    removedDirectory = targets.map(\.directory).first { !FileManager.default.fileExists(atPath: $0) }
                }
                do { try await feed(event) } catch { await fail(error) }
                if machine.finished != nil { return }
            }
        }

        /// Every second, whether each target's runtime directory is still
        /// there: with it gone (rm -rf by hand, a cleanup job) its sockets are
        /// dead while QEMU runs on, so the run is ended as a SIGTERM would end
        /// it, and `drive` records why. Polling, not inotify: a user may have
        /// only 128 inotify instances, fewer than a supervisor's shims. The
        /// stat runs on the event loop's own timer, with no task woken for it.
        private func watchDirectories() -> RepeatedTask {
            let directories = targets.map(\.directory)
            let sink = self.sink
            return group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { task in
                if directories.contains(where: { access($0, F_OK) != 0 }) {
                    sink.yield(.signal(SIGTERM))
                    task.cancel()
                }
            }
        }

        /// One event through the machine, and its actions done in order.
        func feed(_ event: SessionEvent) async throws {
            let now = monotonicSeconds()
            let actions: [SessionAction]
            if let (next, said) = await matcher.handle(machine, event, now: now) {
                machine = next
                actions = said
            } else {
                // The step overran (a pattern backtracking on a line): the machine is as
                // before the event, and ends the run here, on this thread.
                var what = "the run's patterns"
                if case .serial(let i, let device, _) = event {
                    let ps = machine.patterns(target: i, device: device).map { "/\($0)/" }
                    what = (ps.count == 1 ? "the pattern " : "the patterns ") + ps.joined(separator: ", ")
                        + " on a line of \(targets[i].name)/\(device)"
                }
                actions = machine.handle(.invalidSpec(
                    "matching \(what) took longer than \(SessionMachine.format(MachineThread.stepDeadlineSeconds)): "
                        + "a pattern with nested quantifiers, such as (a+)+, backtracks for minutes on a line that almost matches; "
                        + "write it without them (a+ for (a+)+)"), now: now)
            }
            for action in actions {
                try await perform(action)
            }
        }

        /// A failure of the shell's own (spawning, files): the machine decides what it means.
        func fail(_ error: any Error) async {
            let event: SessionEvent = (error as? DiagnosticError).map { .invalidSpec($0.description) } ?? .startFailed("\(error)")
            try? await feed(event)
        }

        /// The command and sidecars first (they may be talking to the
        /// targets), then every QEMU; then the report and the final status.
        func tearDown() async {
            timers.forEach { $0.cancel() }
            await output.drained()
            runStates.1.finish()
            runStateTask?.cancel()
            if let dir = removedDirectory {
                let message = "the runtime directory \(dir) was removed while the instance ran (its sockets with it)"
                note(message)
                code = ExitCode.failure
                outcome = .failed(.runtimeDirectoryRemoved, message)
            }
            if let c = command, c.exitStatus == nil {
                _ = await c.terminate(grace: 2)
            }
            // Each sidecar's whole process group: what it started goes with it.
            for sc in sidecars { _ = await sc.terminateGroup(grace: 2) }
            await withTaskGroup(of: Void.self) { g in
                for t in targets { g.addTask { _ = await t.stop() } }
            }
            if let path = config.junitPath {
                do { try report.write(to: path) } catch { note("\(error)") }
            }
            try? await group.shutdownGracefully()
            config.capture?.collect(prepared, code: code, outcome: outcome)
            keepLogs()
            if config.supervised != nil {
                for t in targets { RuntimeDirectory.removeTree(t.directory) }
            }
            // QEMU's own directory, where it lives apart from the instance's (root, 0700 runtime directory).
            for (_, plan, dir) in prepared where !plan.workingDirectory.hasPrefix(dir + "/") {
                RuntimeDirectory.removeTree(plan.workingDirectory)
            }
            let outcome = self.outcome
            status?.update { s in
                let started = (s.startedAt, s.readyAt, s.qemuPID, s.ready, s.snapshot, s.release)
                s = outcome
                (s.startedAt, s.readyAt, s.qemuPID, s.ready, s.snapshot, s.release) = started
                s.finishedAt = ShimStatus.now
            }
        }

        /// Each target's logs, into its state directory before its runtime
        /// directory goes: `vtarget logs NAME` reads them after the end.
        private func keepLogs() {
            let finishedAt = ShimStatus.now
            let stateDirectory = SupervisorPaths(environment: config.environment).stateDirectory
            for var record in records where FileManager.default.fileExists(atPath: record.layout.logDirectory) {
                record.phase = outcome.phase
                let state = config.supervised?.state
                    ?? .unsupervised(stateDirectory: stateDirectory, namespace: record.namespace, name: record.name)
                FinishedRun.keep(record, in: state, finishedAt: finishedAt)
            }
        }
    }
}

extension SessionPlan {
    /// What the machine needs of the prepared targets and the run's flags.
    init(_ prepared: [PreparedTarget], _ config: RunConfiguration) {
        self.init(
            targets: prepared.map { r, plan, _ in
                let l = r.lifecycle
                return SessionPlan.Target(
                    name: plan.targetName, defaultDevice: plan.serialChannels.first?.device ?? "",
                    readiness: l.readiness.map { .init(device: $0.device, pattern: $0.pattern, timeoutSeconds: $0.timeoutSeconds) },
                    idleTTLSeconds: l.idleTTLSeconds,
                    tests: l.tests.map { t in
                        SessionPlan.Test(name: t.name, steps: t.steps.map { step in
                            switch step {
                            case .send(let text, let device): return .send(text, device: device)
                            case .expect(let p, let timeout, let device): return .expect(pattern: p, timeoutSeconds: timeout, device: device)
                            }
                        })
                    },
                    sidecars: l.sidecars.map { .init(name: $0.name, isTest: $0.role == .test) })
            },
            until: config.until, timeoutSeconds: config.timeoutSeconds,
            ttlSeconds: config.ttlSeconds ?? prepared.compactMap(\.0.lifecycle.ttlSeconds).min(),
            command: config.command)
    }
}
