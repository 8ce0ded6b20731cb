import CSpawn
import InstanceContract
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct SpawnError: Error, Sendable, CustomStringConvertible {
    public var executable: String
    public var errno: Int32
    /// The step between fork and exec that failed, when it was not exec itself.
    public var step: String?

    public init(executable: String, errno: Int32, step: String? = nil) {
        self.executable = executable
        self.errno = errno
        self.step = step
    }

    /// Splits the shim's `step << 24 | errno`.
    init(executable: String, shimError: Int32) {
        let steps = [1: "setsid", 2: "placing fds", 3: "setrlimit", 4: "private mounts", 5: "dropping privileges",
                     6: "parent-death signal", 7: "no_new_privs", 8: "loading the seccomp filter", 9: "chdir",
                     10: "clone (namespaces)", 11: "mapping ids in the user namespace", 12: "joining its cgroup",
                     13: "building its minimal root"]
        self.init(executable: executable, errno: shimError & 0xFFFFFF, step: steps[Int(shimError >> 24)])
    }

    public var description: String {
        "cannot start \(executable): " + (step.map { "\($0): " } ?? "") + String(cString: strerror(errno))
    }
}

public struct SpawnRequest: Sendable {
    public var executable: String
    public var arguments: [String]
    public var environment: [String]
    public var workingDirectory: String?
    /// fds[i] becomes fd i in the child; -1 is /dev/null. Everything else is closed.
    public var fds: [Int32]
    public var newSession: Bool
    public var parentDeathSignal: Int32
    public var sandbox: SandboxPolicy
    /// A cgroup v2 directory the child is created in (clone3's
    /// CLONE_INTO_CGROUP; where the kernel refuses that, it joins before
    /// anything else runs), so all it ever starts is in it too;
    /// `terminateGroup` then kills the whole group, and removes it.
    public var cgroup: String?

    public init(executable: String, arguments: [String], environment: [String], workingDirectory: String? = nil,
                fds: [Int32] = [-1, 1, 2], newSession: Bool = true, parentDeathSignal: Int32 = SIGKILL,
                sandbox: SandboxPolicy = .none, cgroup: String? = nil) {
        self.sandbox = sandbox
        self.cgroup = cgroup
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.fds = fds
        self.newSession = newSession
        self.parentDeathSignal = parentDeathSignal
    }
}

/// A child process owned by vtarget. It is forked from a thread of its own
/// that then waits for it: PR_SET_PDEATHSIG fires when the *forking thread*
/// dies, so that thread must outlive the child, and a pool thread would not.
/// Signals go through a pidfd, so a recycled PID is never signalled.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    /// The cgroup it was started in (see `SpawnRequest.cgroup`).
    public let cgroup: String?
    private let pidfd: Int32
    private let state: Mutex<State>

    private struct State {
        var status: ExitStatus?
        var waiters: [CheckedContinuation<ExitStatus, Never>] = []
        var pidfdClosed = false
    }

    private init(pid: pid_t, pidfd: Int32, cgroup: String?) {
        self.pid = pid
        self.cgroup = cgroup
        self.pidfd = pidfd
        self.state = Mutex(State())
    }

    /// Starts the child and returns once exec succeeded (or failed). A
    /// sandbox that cannot be built means no child: never a silent fallback.
    public static func spawn(_ request: SpawnRequest) async throws -> ChildProcess {
        let filter = request.sandbox.seccomp ? try SeccompFilter.build(request.sandbox) : nil
        let result: Result<ChildProcess, SpawnError> = await withCheckedContinuation { cont in
            let job = SpawnJob(request: request, filter: filter, started: cont)
            let box = Unmanaged.passRetained(job).toOpaque()
            var thread = pthread_t()
            var attr = pthread_attr_t()
            pthread_attr_init(&attr)
            pthread_attr_setstacksize(&attr, 256 << 10)
            let rc = pthread_create(&thread, &attr, { raw in
                let job = Unmanaged<SpawnJob>.fromOpaque(raw!).takeRetainedValue()
                job.run()
                return nil
            }, box)
            pthread_attr_destroy(&attr)
            if rc != 0 {
                Unmanaged<SpawnJob>.fromOpaque(box).release()
                cont.resume(returning: .failure(SpawnError(executable: request.executable, errno: rc)))
            } else {
                pthread_detach(thread)
            }
        }
        return try result.get()
    }

    /// The exit status, once the child has ended (it is reaped by its own thread).
    public var exitStatus: ExitStatus? { state.withLock { $0.status } }

    public func waitForExit() async -> ExitStatus {
        await withCheckedContinuation { cont in
            let ready: ExitStatus? = state.withLock { s in
                if let st = s.status { return st }
                s.waiters.append(cont)
                return nil
            }
            if let ready { cont.resume(returning: ready) }
        }
    }

    /// Sends `signal` unless the child has already been reaped.
    @discardableResult
    public func signal(_ signal: Int32) -> Bool {
        state.withLock { s in
            guard s.status == nil, !s.pidfdClosed else { return false }
            return (pidfd >= 0 ? cspawn_pidfd_signal(pidfd, signal) : kill(pid, signal)) == 0
        }
    }

    /// For a child that leads its own session: SIGTERM to its whole process
    /// group, up to `grace` seconds for the child, then SIGKILL to the group
    /// (grandchildren included, even when the child itself already ended)
    /// and, when it has a cgroup, to everything in it: a grandchild that
    /// left the group with `setsid` cannot leave the cgroup. The cgroup is
    /// removed once empty.
    public func terminateGroup(grace: Double) async -> ExitStatus {
        if exitStatus == nil { kill(-pid, SIGTERM) }
        let status = await withDeadline(grace, { await self.waitForExit() })
        kill(-pid, SIGKILL)
        if let cgroup { await ProcessCgroup.killAndRemove(cgroup) }
        if let status { return status }
        return await waitForExit()
    }

    /// Waits up to `grace` seconds for the child, then SIGKILLs it and waits.
    public func terminate(term: Bool = true, grace: Double) async -> ExitStatus {
        if term { signal(SIGTERM) }
        if let status = await withDeadline(grace, { await self.waitForExit() }) { return status }
        signal(SIGKILL)
        return await waitForExit()
    }

    fileprivate func reaped(_ status: ExitStatus) {
        let waiters = state.withLock { s -> [CheckedContinuation<ExitStatus, Never>] in
            s.status = status
            s.pidfdClosed = true
            if pidfd >= 0 { close(pidfd) }
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: status) }
    }

    private final class SpawnJob: @unchecked Sendable {
        let request: SpawnRequest
        let filter: SeccompFilter?
        let started: CheckedContinuation<Result<ChildProcess, SpawnError>, Never>

        init(request: SpawnRequest, filter: SeccompFilter?, started: CheckedContinuation<Result<ChildProcess, SpawnError>, Never>) {
            self.request = request
            self.filter = filter
            self.started = started
        }

        /// Runs on the dedicated thread: fork, report, then reap.
        func run() {
            let argv = CStringArray([request.executable] + request.arguments)
            let envp = CStringArray(request.environment)
            var pid: pid_t = 0
            let policy = request.sandbox
            let limits = policy.limits.map { cspawn_rlimit(resource: $0.resource, soft: rlim_t($0.soft), hard: rlim_t($0.hard)) }
            let program = filter?.program ?? []
            // CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS: the
            // child sees no other process (it is pid 1 of its own), no host
            // SysV IPC, and its hostname is its own.
            var flags: Int32 = policy.namespaces ? 0x4000_0000 | 0x0002_0000 | 0x2000_0000 | 0x0800_0000 | 0x0400_0000 : 0
            if policy.hostNetwork { flags &= ~0x4000_0000 }
            if policy.userNamespace { flags |= 0x1000_0000 }  // CLONE_NEWUSER
            let uidMap = "\(geteuid()) \(geteuid()) 1\n", gidMap = "\(getegid()) \(getegid()) 1\n"
            let mountStrings = CStringArray(policy.privateMounts.flatMap { [$0.path, $0.options] })
            defer { mountStrings.free() }
            let mounts = policy.privateMounts.enumerated().map { i, m in
                cspawn_tmpfs(path: mountStrings.pointers[2 * i], options: mountStrings.pointers[2 * i + 1], flags: m.flags)
            }
            let root = policy.namespaces ? policy.minimalRoot : nil
            let bindStrings = CStringArray(root?.binds.map(\.path) ?? [])
            defer { bindStrings.free() }
            let binds = (root?.binds ?? []).enumerated().map { i, b in cspawn_bind(path: bindStrings.pointers[i], read_only: b.readOnly ? 1 : 0) }
            let linkStrings = CStringArray(root?.symlinks.flatMap { [$0.link, $0.target] } ?? [])
            defer { linkStrings.free() }
            let procStrings = CStringArray(root?.procOptions ?? [])
            defer { procStrings.free() }
            var cgroupFD: Int32 = -1, cgroupDirFD: Int32 = -1
            if let dir = request.cgroup {
                cgroupFD = open(dir + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
                cgroupDirFD = cgroupFD < 0 ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard cgroupDirFD >= 0 else {
                    let e = errno
                    if cgroupFD >= 0 { close(cgroupFD) }
                    argv.free()
                    envp.free()
                    started.resume(returning: .failure(SpawnError(executable: request.executable, errno: e, step: "opening \(dir)")))
                    return
                }
            }
            defer {
                if cgroupFD >= 0 { close(cgroupFD) }
                if cgroupDirFD >= 0 { close(cgroupDirFD) }
            }
            let err: Int32 = uidMap.withCString { uidMapC in gidMap.withCString { gidMapC in
              mounts.withUnsafeBufferPointer { tmpfs in
              binds.withUnsafeBufferPointer { bindArray in
              policy.groups.map { gid_t($0) }.withUnsafeBufferPointer { groups in
              request.fds.withUnsafeBufferPointer { fds in
                limits.withUnsafeBufferPointer { rl in
                    program.withUnsafeBytes { bpf in
                        withOptionalCString(request.workingDirectory) { cwd in
                            request.executable.withCString { path in
                                var attr = cspawn_attr(
                                    path: path, argv: argv.pointers, envp: envp.pointers, cwd: cwd,
                                    fds: fds.baseAddress, fd_count: Int32(fds.count),
                                    new_session: request.newSession ? 1 : 0,
                                    parent_death_signal: request.parentDeathSignal, umask_value: 0o077,
                                    rlimits: rl.baseAddress, rlimit_count: Int32(rl.count),
                                    namespace_flags: flags,
                                    tmpfs: tmpfs.baseAddress, tmpfs_count: Int32(tmpfs.count),
                                    cgroup_procs_fd: cgroupFD, cgroup_dir_fd: cgroupDirFD,
                                    minimal_root: root == nil ? 0 : 1,
                                    bind_cwd: root?.bindWorkingDirectory == true ? 1 : 0,
                                    binds: bindArray.baseAddress, bind_count: Int32(bindArray.count),
                                    symlinks: UnsafeRawPointer(linkStrings.pointers).assumingMemoryBound(to: UnsafePointer<CChar>?.self),
                                    symlink_count: Int32(root?.symlinks.count ?? 0),
                                    proc_options: UnsafeRawPointer(procStrings.pointers).assumingMemoryBound(to: UnsafePointer<CChar>?.self),
                                    proc_option_count: Int32(root?.procOptions.count ?? 0),
                                    uid_map: uidMapC, gid_map: gidMapC,
                                    gid: policy.runAs.map { Int32(bitPattern: $0.gid) } ?? -1,
                                    uid: policy.runAs.map { Int32(bitPattern: $0.uid) } ?? -1,
                                    groups: groups.baseAddress, group_count: Int32(groups.count),
                                    no_new_privs: policy.noNewPrivileges ? 1 : 0,
                                    seccomp_filter: filter == nil ? nil : bpf.baseAddress,
                                    seccomp_len: Int32(program.count / 8))
                                return cspawn_spawn(&attr, &pid)
                            }
                        }
                    }
                }
              }
              }
              }
              }
            } }
            argv.free()
            envp.free()
            guard err == 0 else {
                started.resume(returning: .failure(SpawnError(executable: request.executable, shimError: err)))
                return
            }
            let pidfd = cspawn_pidfd_open(pid)
            let child = ChildProcess(pid: pid, pidfd: pidfd, cgroup: request.cgroup)
            started.resume(returning: .success(child))
            // With no death signal this thread need not outlive the child:
            // the shared watch reaps it, and a supervisor keeps one thread
            // for all its shims instead of one each.
            if request.parentDeathSignal == 0, pidfd >= 0, PidfdWatch.whenReadable(pidfd, { Self.reap(child) }) { return }
            Self.reap(child)
        }

        /// Waits for the child (at once when it has ended) and records its status.
        private static func reap(_ child: ChildProcess) {
            var status: Int32 = 0
            while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
            let low = status & 0x7F
            child.reaped(low == 0 ? .exited((status >> 8) & 0xFF) : .signalled(low))
        }
    }
}

/// NULL-terminated C string arrays for execve, built before fork.
struct CStringArray {
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

    init(_ strings: [String]) {
        pointers = .allocate(capacity: strings.count + 1)
        for (i, s) in strings.enumerated() { pointers[i] = strdup(s) }
        pointers[strings.count] = nil
    }

    func free() {
        var i = 0
        while let p = pointers[i] { Glibc.free(p); i += 1 }
        pointers.deallocate()
    }
}

func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let s else { return body(nil) }
    return s.withCString { body($0) }
}

/// A connected stream socket pair, both ends close-on-exec.
public func makeSocketPair() throws(SpawnError) -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    let rc = cspawn_socketpair(&fds)
    if rc != 0 { throw SpawnError(executable: "socketpair", errno: rc) }
    return (fds[0], fds[1])
}

/// A pipe (read end, write end), both close-on-exec.
public func makePipe() throws(SpawnError) -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    let rc = cspawn_pipe(&fds)
    if rc != 0 { throw SpawnError(executable: "pipe", errno: rc) }
    return (fds[0], fds[1])
}

/// Signals a process vtarget does not parent (a QEMU of another `vtarget run`)
/// without ever hitting a recycled PID: a pidfd is opened first, then the
/// start time is checked, so the handle is known to name that very process.
public func signalProcess(pid: pid_t, startTime: UInt64, currentStartTime: (pid_t) -> UInt64?, signal: Int32) -> Bool {
    let fd = cspawn_pidfd_open(pid)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    guard currentStartTime(pid) == startTime else { return false }
    return cspawn_pidfd_signal(fd, signal) == 0
}

/// `operation`'s result, or nil when `seconds` pass first (it is then cancelled).
public func withDeadline<T: Sendable>(_ seconds: Double, _ operation: @escaping @Sendable () async -> T) async -> T? {
    // Not a task group: a group waits for every child, and the operation (a
    // wait for a process) may not end until the caller, told nil, kills it.
    let race = DeadlineRace<T>()
    return await withCheckedContinuation { cont in
        race.start(cont, seconds: seconds, operation)
    }
}

/// Whichever of the operation and the timer ends first resumes the caller.
private final class DeadlineRace<T: Sendable>: Sendable {
    private let pending = Mutex<CheckedContinuation<T?, Never>?>(nil)
    private let timer = Mutex<Task<Void, Never>?>(nil)

    func start(_ cont: CheckedContinuation<T?, Never>, seconds: Double, _ operation: @escaping @Sendable () async -> T) {
        pending.withLock { $0 = cont }
        let t = Task {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            self.finish(nil)
        }
        timer.withLock { $0 = t }
        Task {
            self.finish(await operation())
            self.timer.withLock { $0?.cancel() }
        }
    }

    private func finish(_ value: T?) {
        pending.withLock { $0.take() }?.resume(returning: value)
    }
}
