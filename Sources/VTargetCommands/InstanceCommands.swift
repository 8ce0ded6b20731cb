import InstanceContract
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import MachineCatalog
import QMP
import Sandbox
import HostOS
import TargetRuntime
import ControlAPI

/// How instance verbs name their instance.
struct InstanceOptions: ParsableArguments {
    @Argument(help: "The instance's name.")
    var name: String

    @Option(name: .shortAndLong, help: "Its namespace, when names repeat across namespaces.")
    var namespace: String?

    @Option(name: .customLong("run"), help: "The pid of the vtarget run that owns it, when two runs of one file share its name and namespace.")
    var run: Int32?

    func locate() throws -> InstanceRecord {
        try InstanceLocator.find(name, namespace: namespace, run: run, environment: Environment.variables)
    }

    /// A QMP client on the instance's proxy; `body` uses it, then it is closed.
    func withQMP<T>(timeout: Double = 10, _ body: (QMPClient) async throws -> T) async throws -> T {
        let qmp = try await QMPClient.connect(path: locate().layout.qmpSocket, timeout: timeout)
        defer { qmp.close() }
        return try await body(qmp)
    }
}

struct Qmp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qmp",
        abstract: "Send one QMP command to an instance and print its result as JSON.",
        discussion: "JSON is a command object ('{\"execute\": \"query-status\"}') or just a command name ('query-status').")

    @OptionGroup var instance: InstanceOptions
    @Argument(help: "The command.") var command: String

    func run() async throws {
        let object: JSONValue
        if let parsed = try? JSONValue.parse(Array(command.utf8)), case .object = parsed {
            object = parsed
        } else if command.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) {
            object = .object(["execute": .string(command)])
        } else {
            throw ValidationError("not a QMP command object or command name: \(command)")
        }
        let name = object["execute"]?.stringValue ?? ""
        let result = try await instance.withQMP { try await $0.execute(name, arguments: object["arguments"], timeout: 10) }
        printOut(result.description)
    }
}

struct Hmp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hmp", abstract: "Run a human monitor command ('info registers') through QMP.")

    @OptionGroup var instance: InstanceOptions
    @Argument(help: "The HMP command line.") var command: String

    func run() async throws {
        let r = try await instance.withQMP {
            try await $0.execute("human-monitor-command", arguments: .object(["command-line": .string(command)]), timeout: 10)
        }
        let text = r.stringValue ?? r.description
        if !text.isEmpty { printOut(text.trimmedTrailingNewlinesForOutput) }
    }
}

/// pause, resume and reset: one QMP command each, then the line kubectl-style
/// verbs print (`instance/NAME paused`), so a script's log says what happened.
struct SimpleQMPVerb {
    static func run(_ instance: InstanceOptions, _ command: String, done: String) async throws {
        _ = try await instance.withQMP { try await $0.execute(command, timeout: 10) }
        printOut("\(await VMNames.qualified(try instance.locate())) \(done)")
    }
}

struct Pause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Pause the guest's CPUs (QMP stop).")
    @OptionGroup var instance: InstanceOptions
    func run() async throws { try await SimpleQMPVerb.run(instance, "stop", done: "paused") }
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume a paused guest (QMP cont).", aliases: ["unpause"])
    @OptionGroup var instance: InstanceOptions
    func run() async throws { try await SimpleQMPVerb.run(instance, "cont", done: "resumed") }
}

struct Reset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reset", abstract: "Reset the guest, as its reset button would (QMP system_reset).")
    @OptionGroup var instance: InstanceOptions
    func run() async throws { try await SimpleQMPVerb.run(instance, "system_reset", done: "reset") }
}

struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop an instance: system_powerdown where the board honours it, then quit, then SIGTERM, then SIGKILL.",
        discussion: """
            Each step is bounded; the whole stop takes at most --timeout plus 4 s.             A supervised instance (vtarget apply) is stopped through the supervisor and stays stopped,             whatever its restartPolicy, until vtarget start.
            """)

    @OptionGroup var instance: InstanceOptions

    @Option(help: "How long the guest gets to power down.")
    var timeout: String = "10s"

    @Flag(help: "virtctl's stop --force: no ACPI shutdown, QEMU is ended at once.")
    var force = false

    @Option(name: .customLong("grace-period"), help: "Seconds the guest gets to power off after the ACPI power button (a VM's default: its terminationGracePeriodSeconds, else 180; 0 is --force).")
    var gracePeriod: Int?

    func validate() throws {
        if let g = gracePeriod, g < 0 { throw ValidationError("--grace-period: seconds, 0 or more (got \(g))") }
    }

    func run() async throws {
        let located = Result { try instance.locate() }
        if (try? located.get())?.supervised == true || (try? located.get()) == nil, let client = await SupervisorConnection.existing() {
            var path = "/v1/instances/\(instance.namespace ?? (try? located.get())?.namespace ?? "default")/\(instance.name)/stop"
            let query = (force ? ["force=1"] : []) + (gracePeriod.map { ["gracePeriod=\($0)"] } ?? [])
            if !query.isEmpty { path += "?" + query.joined(separator: "&") }
            do {
                let r: ObjectResult = try await client.send(.POST, path)
                return printOut("\(Table.qualified(r.kind))/\(r.name) \(r.action)")
            } catch where error.status == 404 {
                // Not the supervisor's: a `vtarget run` instance, or none.
            } catch { throw error.asCommandError }
        }
        let record = try located.get()
        let name = await VMNames.qualified(record)
        try await stopDirectly(record)
        printOut("\(name) stopped")
    }

    /// A `vtarget run` instance: its QEMU is stopped here, step by step.
    private func stopDirectly(_ record: InstanceRecord) async throws {
        let grace = gracePeriod.map(Double.init) ?? Quantity.parseDuration(timeout) ?? 10
        if let qmp = try? await QMPClient.connect(path: record.layout.qmpSocket, timeout: 2) {
            if record.powerdown, !force, grace > 0, (try? await qmp.execute("system_powerdown", timeout: 10)) != nil {
                _ = await qmp.waitForEvent("SHUTDOWN", timeout: grace)
            }
            _ = try? await qmp.execute("quit", timeout: 2)
            qmp.close()
        }
        if waitGone(record, seconds: 2) { return }
        signal(record, SIGTERM)
        if waitGone(record, seconds: 2) { return }
        signal(record, SIGKILL)
        if !waitGone(record, seconds: 2) { throw RuntimeError("\(record.name): QEMU (pid \(record.qemuPID)) did not stop", code: .timeout) }
    }

    private func waitGone(_ r: InstanceRecord, seconds: Double) -> Bool {
        for _ in 0..<Int(seconds * 50) {
            if !r.qemuAlive { return true }
            usleep(20_000)
        }
        return !r.qemuAlive
    }

    /// Only the QEMU the record names, through a pidfd checked against its start time.
    private func signal(_ r: InstanceRecord, _ sig: Int32) {
        _ = signalProcess(pid: r.qemuPID, startTime: r.qemuStartTime, currentStartTime: Processes.startTime(of:), signal: sig)
    }
}

extension String {
    var trimmedTrailingNewlinesForOutput: String {
        var s = Substring(self)
        while s.last == "\n" || s.last == "\r" { s = s.dropLast() }
        return String(s)
    }
}

/// `apply --wait` and `wait --for condition=Ready` under the supervisor:
/// woken by the supervisor's event stream (the one `get -w` reads), not by
/// polling. Each event re-lists the instances, as `get -w` does, and the
/// wait ends once every chosen instance is Ready or has ended without.
struct ReadyWait {
    let client: ControlClient
    /// `namespace=NS`, or empty for every namespace.
    let query: String
    let chooses: @Sendable (InstanceInfo) -> Bool

    /// An instance that will not be Ready: ended (Failed, Succeeded before
    /// Ready, Expired) with no restart to come, with why.
    struct Failure {
        var name: String
        var why: String
    }

    enum Outcome {
        /// Every chosen instance is Ready (or none was chosen).
        case ready([InstanceInfo])
        /// At least one ended without being Ready; the rest were settled.
        case failed([Failure])
        /// `seconds` passed with these still on their way.
        case timedOut([InstanceInfo])
    }

    /// Waits at most `seconds`.
    func run(seconds: Double) async throws(ControlError) -> Outcome {
        // Events up to now change nothing a first listing would not show.
        let past: [EventInfo] = try await client.get("/v1/events?" + query)
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let path = "/v1/events?watch=1&after=\(past.last?.id ?? 0)&" + query
        let (client, chooses) = (self.client, self.chooses)
        do {
            return try await withThrowingTaskGroup(of: Void.self) { g in
                defer { g.cancelAll() }
                g.addTask {
                    defer { wake.finish() }
                    try await client.stream(path) { _ in
                        wake.yield()
                        return true
                    }
                }
                g.addTask {
                    try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                    wake.finish()
                }
                var last: Outcome = .timedOut([])
                wake.yield()  // the first look, before any event
                for await _ in wakes {
                    last = Self.settle(try await client.get("/v1/instances?" + query, as: [InstanceInfo].self).filter(chooses))
                    if case .timedOut = last { continue }
                    return last
                }
                // The stream or the time ended: one last look decides.
                return Self.settle(try await client.get("/v1/instances?" + query, as: [InstanceInfo].self).filter(chooses))
            }
        } catch let e as ControlError {
            throw e
        } catch {
            throw ControlError(status: nil, message: "\(error)")
        }
    }

    /// Whether the wait is over: all Ready, or some failed and none still
    /// starting; `.timedOut` with the instances still on their way otherwise.
    static func settle(_ chosen: [InstanceInfo]) -> Outcome {
        var failures: [Failure] = []
        var pending: [InstanceInfo] = []
        for i in chosen where !i.ready {
            // One its restart policy restarts is on its way again.
            if InstancePhase(rawValue: i.phase)?.isActive ?? true || i.nextRestartAt != nil {
                pending.append(i)
            } else {
                let why = [i.reason, i.message].compactMap { $0 }.joined(separator: ": ")
                failures.append(Failure(name: i.name, why: "\(i.phase) before Ready" + (why.isEmpty ? "" : " (\(why))")
                                         + (i.stderrTail.isEmpty ? "" : "; QEMU said: " + i.stderrTail.suffix(3).joined(separator: " | "))))
            }
        }
        if !pending.isEmpty { return .timedOut(pending) }
        return failures.isEmpty ? .ready(chosen) : .failed(failures)
    }

    /// The instances an apply's results start or restart: VirtualTargetInstances
    /// and VMs by name, a target's instances (its own and those naming it),
    /// and a pool's members.
    static func chooses(_ results: [ObjectResult]) -> @Sendable (InstanceInfo) -> Bool {
        let named = Set(results.filter { $0.kind != "ConfigMap" && $0.kind != "QemuVirtualTarget" && $0.kind != "VirtualTargetPool" }
            .map { $0.namespace + "/" + $0.name })
        let targets = Set(results.filter { $0.kind == "QemuVirtualTarget" }.map { $0.namespace + "/" + $0.name })
        let pools = Set(results.filter { $0.kind == "VirtualTargetPool" }.map { $0.namespace + "/" + $0.name })
        return { i in
            if let pool = i.pool { return pools.contains(i.namespace + "/" + pool) }
            return named.contains(i.namespace + "/" + i.name) || targets.contains(i.namespace + "/" + i.target)
        }
    }

    /// Prints the outcome as `apply --wait` and `wait` report it; the exit code (0 Ready, 1 otherwise).
    static func report(_ outcome: Outcome, timeout: String) -> Int32 {
        switch outcome {
        case .ready: return 0
        case .failed(let fs):
            for f in fs { printError("error: instance \"\(f.name)\": \(f.why)") }
            return InstanceContract.ExitCode.failure
        case .timedOut(let pending):
            for i in pending { printError("error: instance \"\(i.name)\": not Ready within \(timeout) (phase \(i.phase))") }
            return InstanceContract.ExitCode.failure
        }
    }
}
