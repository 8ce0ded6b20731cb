#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import InstanceContract
import Sandbox
import HostOS
import TargetRuntime

extension Supervisor {
    func removeInstance(_ row: InstanceRow) async {
        restartTimers.removeValue(forKey: row.key)?.cancel()
        let spec = try? store.spec(row.namespace, row.name)
        if var r = storedRow(row.namespace, row.name) {
            r.desired = "stopped"
            commit(r)
        }
        await stopShim(row.key, message: "deleted")
        statusWatcher.unwatch(key: row.key)
        do {
            let ev = event("Normal", row, "Deleted", "instance deleted")
            var stored = ev
            try store.write { db in
                _ = try InstanceRow.deleteOne(db, key: ["namespace": row.namespace, "name": row.name])
                _ = try InstanceSpecRow.deleteOne(db, key: ["namespace": row.namespace, "name": row.name])
                try stored.insert(db)
            }
            publish([stored])
        } catch {
            log("cannot delete \(row.key): \(error)")
        }
        RuntimeDirectory.removeTree(paths.instanceState(namespace: row.namespace, name: row.name).directory)
        for path in removeOwnVolumes(of: row, spec: spec) { log("\(row.key): its own volume \(path) deleted with it") }
    }

    /// Spawns the shim for an instance that should run: its pid and start
    /// time are committed before it may begin (it waits for a byte on stdin),
    /// so a supervisor killed at any point never leaves a shim it does not know.
    /// Called with the namespace's lock held; the row is read again after the
    /// spawn's await, and a shim whose instance went meanwhile never gets its go.
    func startInstance(_ key: String) async {
        let (namespace, name) = split(key)
        guard var row = storedRow(namespace, name), row.desired == "running", shims[key] == nil else { return }
        let now = ShimStatus.now
        if let expires = row.expiresAt, expires <= now {
            row.phase = .expired
            row.reason = .ttlExpired
            row.message = "the TTL had passed before it could start"
            row.finishedAt = now
            commit(row, event("Normal", row, "Expired", row.message!))
            return
        }
        let state = paths.instanceState(namespace: namespace, name: name)
        let stateDir = state.directory, specPath = state.specFile, statusPath = state.statusFile
        do {
            try makeDirectories(stateDir)
            guard let spec = try store.spec(namespace, name) else { throw RuntimeError("cannot write \(specPath)") }
            try FileDescriptors.replaceFile(specPath, with: Array(spec.utf8))
            unlink(statusPath)
            statusWatcher.watch(stateDir, key: key)
            let log = open(state.shimLog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            defer { if log >= 0 { close(log) } }
            Self.markStart(log)
            CrashPoint.hit("before-spawn")
            var shim = ShimArguments(instance: key, specFile: specPath, statusFile: statusPath, relativeTo: row.specDirectory)
            shim.lenient = row.options.lenient
            shim.allowHostPaths = row.options.allowHostPaths
            shim.allowExtraArgs = row.options.allowExtraArgs
            shim.sandbox = options.sandbox
            shim.poolSnapshot = row.pool.map { poolTemplates[namespace + "/" + $0]?.snapshots == true } ?? false
            shim.ttlMilliseconds = row.expiresAt.map { max(1, Int(($0 - now) * 1000)) }
            shim.sidecarOwner = row.owner
            shim.startPaused = pausedStarts.contains(key)
            shim.bundleDirectory = paths.bundles(namespace: namespace, name: name)
            let args = shim.arguments()
            let child: ChildProcess, goWrite: Int32
            defer { scheduleStandby() }
            if let taken = takeStandby(for: StandbyAssignment(arguments: args, workingDirectory: stateDir, log: state.shimLog)) {
                (child, goWrite) = taken
            } else {
                (child, goWrite) = try await spawnShim(args, workingDirectory: stateDir, output: log)
            }
            CrashPoint.hit("after-spawn")
            guard let fresh = storedRow(namespace, name), fresh.desired == "running", shims[key] == nil else {
                // No go-byte: the shim reads end of file and exits without starting anything.
                close(goWrite)
                _ = await child.waitForExit()
                return
            }
            row = fresh
            let identity = ProcessIdentity.of(child.pid) ?? ProcessIdentity(pid: child.pid, startTime: 0)
            row.uid = Self.newUID()
            row.shimPID = child.pid
            row.shimStartTime = Int64(identity.startTime)
            row.phase = .starting
            row.reason = nil
            row.message = nil
            row.ready = false
            row.readyAt = nil
            row.qemuPID = nil
            row.startedAt = nil
            row.finishedAt = nil
            row.exitCode = nil
            row.signal = nil
            row.stderrTail = []
            row.nextRestartAt = nil
            commit(row, event("Normal", row, "Starting", "starting on \(row.machine) (shim pid \(child.pid))"))
            shims[key] = Shim(uid: row.uid, identity: identity, child: child)
            CrashPoint.hit("after-commit")
            var go: UInt8 = 0x67
            _ = write(goWrite, &go, 1)
            close(goWrite)
            CrashPoint.hit("after-go")
            let uid = row.uid
            watchers[key] = Task {
                let status = await child.waitForExit()
                await self.shimExited(key, uid: uid, status: status)
            }
        } catch {
            row.phase = .failed
            row.reason = .startFailed
            row.message = "\(error)"
            row.finishedAt = now
            commit(row, event("Warning", row, "StartFailed", "\(error)"))
        }
    }

    /// A status.json change: Running and Ready as the shim reports them.
    func statusChanged(_ key: String) {
        statusArrived(key)
        let (namespace, name) = split(key)
        guard var row = storedRow(namespace, name), row.phase == .starting || row.phase == .running,
              let st = ShimStatus.read(paths.instanceState(namespace: namespace, name: name).statusFile),
              !st.isFinished else { return }
        var events: [EventRow] = []
        if st.phase == .running && row.phase == .starting {
            row.phase = .running
            row.startedAt = st.startedAt
            row.qemuPID = st.qemuPID
            events.append(event("Normal", row, "Started", "QEMU pid \(st.qemuPID.map(String.init) ?? "?") running", at: st.startedAt))
        }
        if st.snapshot == true && !row.snapshot {
            row.snapshot = true
            events.append(event("Normal", row, "Snapshotted", "savevm \(PoolSnapshot.name): a release restores this state"))
        }
        if st.ready && !row.ready {
            row.ready = true
            row.readyAt = st.readyAt
            events.append(event("Normal", row, "Ready", "readiness reached", at: st.readyAt))
        }
        let paused = st.paused == true && row.phase == .running
        if paused != row.paused {
            row.paused = paused
            row.pausedAt = ShimStatus.now
            events.append(paused ? event("Normal", row, "Paused", "the guest's CPUs are stopped (QMP stop); vtarget resume continues them")
                                 : event("Normal", row, "Resumed", "the guest runs again"))
        }
        let agentChanged = st.guestAgent != row.guestAgent
        if let agent = st.guestAgent, agent.connected != (row.guestAgent?.connected ?? false) {
            events.append(agent.connected ? event("Normal", row, "AgentConnected", "qemu-guest-agent answers" + (agent.osName.map { " (\($0))" } ?? ""))
                                          : event("Warning", row, "AgentDisconnected", "qemu-guest-agent stopped answering"))
        }
        row.guestAgent = st.guestAgent
        if !events.isEmpty || agentChanged { commit(row, events) }
    }

    /// The shim ended: record how (from its status file, else from its exit),
    /// clean up, and apply the restart policy.
    func shimExited(_ key: String, uid: String, status: ExitStatus?) {
        watchers[key] = nil
        statusArrived(key)
        guard let shim = shims[key], shim.uid == uid else { return }
        shims[key] = nil
        let (namespace, name) = split(key)
        guard var row = storedRow(namespace, name), row.uid == uid else { return }
        let now = ShimStatus.now
        let st = ShimStatus.read(paths.instanceState(namespace: namespace, name: name).statusFile)
        if let st, st.isFinished {
            row.phase = st.phase
            row.reason = st.reason
            row.message = st.message
            row.exitCode = st.exitCode
            row.signal = st.signal
            row.stderrTail = st.stderrTail ?? []
            row.startedAt = row.startedAt ?? st.startedAt
        } else {
            row.phase = .failed
            row.reason = .shimDied
            row.message = "the instance's vtarget run ended (\(status.map { "\($0)" } ?? "while the supervisor was down")) without reporting; its QEMU died with it"
                + Self.lastWords(paths.instanceState(namespace: namespace, name: name).shimLog)
            if case .signalled(let s)? = status { row.signal = s }
        }
        row.finishedAt = st?.finishedAt ?? now
        row.shimPID = nil
        row.shimStartTime = nil
        row.qemuPID = nil
        row.ready = false
        row.snapshot = false
        row.paused = false
        row.pausedAt = nil
        // A shim that died without keeping its logs (SIGKILL): kept here, before its directory goes.
        let runtime = paths.instance(namespace: namespace, name: name)
        if let record = FileManager.default.contents(atPath: runtime.recordFile).flatMap(InstanceRecord.decode) {
            FinishedRun.keep(record, in: paths.instanceState(namespace: namespace, name: name), finishedAt: row.finishedAt ?? now)
        }
        RuntimeDirectory.removeTree(runtime.directory)
        // A shim killed while writing its bundle (SIGKILL after the stop's 8 s) leaves a `.partial`, never a `.vtb`.
        BundleShelf.clearLeftovers(paths.bundles(namespace: namespace, name: name))
        var events = [event(row.phase == .failed ? "Warning" : "Normal", row, row.phase == .expired ? "Expired" : (row.reason?.rawValue ?? row.phase.rawValue),
                            (row.message ?? row.phase.rawValue) + (row.stderrTail.isEmpty ? "" : "; QEMU said: " + row.stderrTail.suffix(3).joined(separator: " | ")))]
        if let delay = restartDelay(&row) {
            row.nextRestartAt = now + delay
            events.append(event("Normal", row, "BackOff", "restarting in \(Self.format(delay)) (restart \(row.restarts + 1), policy \(row.restartPolicy))"))
            scheduleRestart(key, uid: row.uid, after: delay)
        }
        commit(row, events)
    }

    /// Whether the restart policy restarts this finished instance, and after how long.
    func restartDelay(_ row: inout InstanceRow) -> Double? {
        guard let d = RestartBackoff.decide(
            policy: row.restartPolicy, desired: row.desired, phase: row.phase, reason: row.reason, startedAt: row.startedAt,
            finishedAt: row.finishedAt, step: row.backoffStep, base: options.backoffBase, cap: options.backoffCap) else { return nil }
        row.backoffStep = d.nextStep
        return d.delay
    }

    /// Stops the shim and starts the instance again, wanted, with `change`
    /// (and the new spec, and an event) committed in between.
    func restart(_ key: String, message: String, spec: String? = nil, event reasonAndMessage: (String, String)? = nil,
                 _ change: (inout InstanceRow) -> Void = { _ in }) async {
        await stopShim(key, message: message)
        let (namespace, name) = split(key)
        guard var fresh = storedRow(namespace, name) else { return }
        restartTimers.removeValue(forKey: key)?.cancel()
        fresh.desired = "running"
        fresh.nextRestartAt = nil
        change(&fresh)
        commit(fresh, reasonAndMessage.map { [event("Normal", fresh, $0.0, $0.1)] } ?? [], spec: spec)
        await startInstance(key)
    }

    func scheduleRestart(_ key: String, uid: String, after delay: Double) {
        restartTimers[key] = Task {
            try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            if !Task.isCancelled { await self.restartDue(key, uid: uid) }
        }
    }

    func restartDue(_ key: String, uid: String) async {
        let (namespace, name) = split(key)
        await exclusively(namespace) { await restartDueLocked(key, uid: uid) }
    }

    private func restartDueLocked(_ key: String, uid: String) async {
        restartTimers[key] = nil
        let (namespace, name) = split(key)
        guard var row = storedRow(namespace, name), row.uid == uid, row.nextRestartAt != nil, row.desired == "running" else { return }
        row.restarts += 1
        row.nextRestartAt = nil
        commit(row, event("Normal", row, "Restarting", "restart \(row.restarts) (policy \(row.restartPolicy))"))
        await startInstance(key)
    }

    /// Stops a running shim: SIGTERM (it stops QEMU gently, then removes its
    /// sockets, and exits within 4 s whatever it waits for), SIGKILL after
    /// 8 s; returns once its end is recorded.
    func stopShim(_ key: String, message: String) async {
        guard let shim = shims[key] else { return }
        let (namespace, name) = split(key)
        if var row = storedRow(namespace, name), row.isActive {
            row.phase = .terminating
            commit(row, event("Normal", row, "Stopping", message))
        }
        let watcher = watchers[key]
        send(SIGTERM, to: shim)
        let done = await withDeadline(8) { await watcher?.value }
        if done == nil {
            send(SIGKILL, to: shim)
            await watcher?.value
        }
    }

    func send(_ signal: Int32, to shim: Shim) {
        if let child = shim.child {
            child.signal(signal)
        } else {
            _ = signalProcess(pid: shim.identity.pid, startTime: shim.identity.startTime,
                              currentStartTime: Processes.startTime(of:), signal: signal)
        }
    }

    /// The end of what a shim printed, for a status that would otherwise
    /// only say it died: the cause is usually its last line.
    /// The line each start of a shim writes into the instance's shim log, which
    /// keeps every run's words: `lastWords` reads after the last one, so a shim
    /// that died once per restart is not quoted once per restart.
    static let startMarker = "--- vtarget: shim started at "

    static func markStart(_ log: Int32) {
        guard log >= 0 else { return }
        let line = startMarker + Date().formatted(.iso8601) + " ---\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(log, $0.baseAddress, $0.count - 1) }
    }

    static func lastWords(_ shimLog: String) -> String {
        guard let data = FileManager.default.contents(atPath: shimLog) else { return "" }
        var text = String(decoding: data.suffix(4096), as: UTF8.self)
        if let start = text.range(of: startMarker, options: .backwards) {
            text = String(text[start.upperBound...].drop { $0 != "\n" })
        }
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.suffix(3)
        return lines.isEmpty ? "" : "; it said: " + lines.joined(separator: " | ")
    }
}

extension Supervisor {
    /// A process of this binary as shims run: its own session, no
    /// parent-death signal (it outlives the supervisor), the shim
    /// environment, stdin a pipe whose write end is returned (the go byte,
    /// or a standby's assignment), stdout and stderr `output` (-1: /dev/null).
    func spawnShim(_ arguments: [String], workingDirectory: String, output: Int32) async throws -> (ChildProcess, Int32) {
        let (r, w) = try makePipe()
        defer { close(r) }
        do {
            let child = try await ChildProcess.spawn(SpawnRequest(
                executable: options.executable, arguments: arguments,
                environment: Self.shimEnvironment(options.environment), workingDirectory: workingDirectory,
                fds: [r, output, output], newSession: true, parentDeathSignal: 0))
            return (child, w)
        } catch {
            close(w)
            throw error
        }
    }

    /// A shim's environment: the supervisor's, and one malloc arena. A shim's
    /// threads (its event loop, the session machine's, Swift's pool) would
    /// each get an arena of their own; their fixed cost and slack were ~95 KiB
    /// of private memory per shim (3.80 -> 3.70 MiB measured over 3 shims),
    /// ~47 MiB over 500, for no speed it needs: glibc's per-thread caches
    /// serve most allocations without the arena's lock. QEMU's environment is
    /// its own (TargetProcess), so this reaches the shim and its bus hosts only.
    static func shimEnvironment(_ environment: [String: String]) -> [String] {
        var env = environment
        if env["MALLOC_ARENA_MAX"] == nil { env["MALLOC_ARENA_MAX"] = "1" }
        // No cache of ended threads' stacks: glibc keeps up to 40 MiB of them, each
        // with ~24 KiB still dirty, and an idle shim's Dispatch workers end.
        let noStackCache = "glibc.pthread.stack_cache_size=0"
        if let t = env["GLIBC_TUNABLES"], !t.isEmpty {
            if !t.contains("glibc.pthread.stack_cache_size") { env["GLIBC_TUNABLES"] = t + ":" + noStackCache }
        } else {
            env["GLIBC_TUNABLES"] = noStackCache
        }
        return env.map { "\($0.key)=\($0.value)" }
    }

    /// The open-file limit the supervisor runs with: its soft limit raised to
    /// the hard one. It holds a pidfd (or a child's) per shim plus the control
    /// socket's connections, so 500 instances need more than the usual soft
    /// 1024; the hard limit is the administrator's to raise (`ulimit -Hn`,
    /// `LimitNOFILE=`). Shims inherit it; QEMU gets its own 1024 from the sandbox.
    @discardableResult
    public static func raiseOpenFileLimit() -> rlim_t {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return raised.rlim_cur }
        }
        return limit.rlim_cur
    }
}
