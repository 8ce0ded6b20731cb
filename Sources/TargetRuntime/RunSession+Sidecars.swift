#if canImport(Glibc)
import Glibc
#endif
import HostOS
import Sandbox
import SessionCore
import TargetSpec

extension RunSession.Live {
    /// Every sidecar of every target; each one's end comes back as an event.
    func startSidecars() async throws {
        for (i, p) in prepared.enumerated() {
            for sc in p.0.lifecycle.sidecars {
                let child = try await spawnSidecar(sc, of: targets[i])
                sidecars.append(child)
                let name = sc.name, isTest = sc.role == .test, sink = self.sink
                Task { sink.yield(.sidecarExited(target: i, name: name, test: isTest, status: await child.waitForExit())) }
            }
        }
    }

    /// The command of `run -- CMD`, with every endpoint in its environment.
    func startCommand() async throws {
        let env = endpointEnvironment()
        guard let exe = ExecutableSearch.find(config.command[0], environment: env) else {
            throw RuntimeError("command not found: \(config.command[0])", code: .notFound)
        }
        let c = try await ChildProcess.spawn(SpawnRequest(
            executable: exe, arguments: Array(config.command.dropFirst()),
            environment: env.map { "\($0.key)=\($0.value)" }, fds: [0, 1, 2],
            newSession: false, parentDeathSignal: SIGTERM))
        command = c
        let sink = self.sink
        let (targets, recording) = (self.targets, config.capture != nil)
        Task {
            let status = await c.waitForExit()
            if recording, status == .exited(0) { await RunSession.drainRecordedInput(targets) }
            sink.yield(.commandExited(status))
        }
    }

    /// A sidecar: a host process with the endpoints (its own target's as the
    /// unprefixed names) and its `env`, output in `logs/sidecar-NAME.log`, in
    /// a process group and a cgroup of its own (both end with the instance).
    /// Under the supervisor it runs as the user that applied the instance,
    /// never as the supervisor's, and gets no variable of the supervisor's.
    private func spawnSidecar(_ sc: Sidecar, of target: TargetProcess) async throws -> ChildProcess {
        // Under the supervisor, nothing of its own environment: the endpoints, a PATH, a HOME.
        var env = config.sidecarOwner == nil ? endpointEnvironment() : endpointVariables()
        var policy = SandboxPolicy.none
        if let owner = config.sidecarOwner {
            env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
            env["HOME"] = Processes.home(of: owner.uid) ?? "/"
            if owner.uid != geteuid() {
                guard geteuid() == 0 else {
                    throw RuntimeError("\(target.name): sidecar \(sc.name) belongs to uid \(owner.uid); a supervisor running as uid \(geteuid()) "
                                       + "cannot start it as that user (a shared supervisor runs as root)", code: .spawn)
                }
                policy.runAs = (owner.uid, owner.gid)
                policy.groups = owner.groups
                // The tenant's sidecars (and the tenant) reach the instance's endpoints.
                try target.handEndpoints(to: owner)
            }
        }
        for (k, v) in EndpointEnvironment.variables([(target.name, target.plan, target.directory, target.rfc2217Ports)]) { env[k] = v }
        // Its stdout is a file, not a tty, so most runtimes block-buffer it and
        // logs/sidecar-NAME.log stays empty until the sidecar exits. Python is
        // told to write each line at once; the sidecar's own env may say otherwise.
        env["PYTHONUNBUFFERED"] = "1"
        for (k, v) in sc.env { env[k] = v }
        guard let exe = ExecutableSearch.find(sc.command[0], environment: env) else {
            throw RuntimeError("\(target.name): sidecar \(sc.name): command not found: \(sc.command[0])", code: .notFound)
        }
        let logPath = target.layout.sidecarLog(sc.name)
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard log >= 0 else { throw RuntimeError("cannot create \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(log) }
        // A cgroup of its own where one can be made (`vtarget doctor` says
        // when not): a grandchild that calls setsid leaves the process group
        // but never the cgroup, so it too ends with the instance.
        let (cgroup, _) = CgroupLimits.processGroup(name: "\(target.name)-sidecar-\(sc.name)")
        do {
            return try await ChildProcess.spawn(SpawnRequest(
                executable: exe, arguments: Array(sc.command.dropFirst()),
                environment: env.map { "\($0.key)=\($0.value)" }, workingDirectory: config.sidecarOwner == nil ? nil : "/",
                fds: [-1, log, log], newSession: true, parentDeathSignal: SIGTERM, sandbox: policy, cgroup: cgroup))
        } catch {
            if let cgroup { rmdir(cgroup) }
            throw error
        }
    }
}
