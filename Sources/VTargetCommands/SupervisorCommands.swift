import ArgumentParser
import InstanceContract
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import GitOpsSync
import MachineCatalog
import ResourceKit
import Supervisor
import HostOS
import TargetRuntime
import TargetSpec
import YAMLTree

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the supervisor in the foreground (apply and friends start it detached when none runs).",
        discussion: """
            The control API listens on $XDG_RUNTIME_DIR/vtarget/supervisor.sock (HTTP+JSON, see the README); \
            state is in $XDG_STATE_HOME/vtarget/state.sqlite. A lock keeps it to one supervisor per user. \
            Stopping it (SIGTERM, vtarget daemon stop) leaves instances running; the next one re-adopts them. \
            It keeps one shim started ahead of the next start (a standby; VTARGET_STANDBY_SHIM=0: none).
            """)

    @Option(help: "Let this group's members use the socket (a shared supervisor); --policy says which namespaces each may touch.")
    var socketGroup: String?

    @Option(help: "A YAML file of rules: users/groups → namespaces (see the README).")
    var policy: String?

    @Flag(name: .customLong("no-sandbox"), help: "Debugging only: instances' QEMUs run without their sandbox.")
    var noSandbox = false

    func run() async throws {
        let env = Environment.variables
        let paths = SupervisorPaths(environment: env)
        umask(0o077)
        try RuntimeDirectory.ensurePrivate(paths.runtimeDirectory, traversable: QEMUSandbox.isRoot || socketGroup != nil)
        try FileManager.default.createDirectory(atPath: paths.stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // One supervisor per state directory: the lock is held for life, and
        // released by the kernel however the process ends.
        let lock = open(paths.lock, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw RuntimeError("cannot open \(paths.lock): \(String(cString: strerror(errno)))") }
        if flock(lock, LOCK_EX | LOCK_NB) != 0 {
            let pid = (try? String(contentsOfFile: paths.lock, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            throw RuntimeError("a supervisor is already running (pid \(pid)) for \(paths.stateDirectory)")
        }
        ftruncate(lock, 0)
        _ = FileDescriptors.writeAll(lock, Array("\(getpid())\n".utf8))

        var group: gid_t?
        if let socketGroup {
            if let n = gid_t(socketGroup) { group = n } else if let g = getgrnam(socketGroup) { group = g.pointee.gr_gid } else {
                throw ValidationError("--socket-group: no group \(socketGroup)")
            }
        }
        let access = try policy.map { try AccessPolicy(file: $0) } ?? AccessPolicy()
        var options = SupervisorOptions(environment: env, executable: Environment.executable, sandbox: !noSandbox)
        if let b = env["VTARGET_RESTART_BACKOFF"].flatMap(Quantity.parseDuration) { options.backoffBase = b }
        if env["VTARGET_STANDBY_SHIM"] == "0" { options.standbyShim = false }
        let supervisor = try Supervisor(paths: paths, options: options, catalog: try Environment.catalog(env))
        try await supervisor.recover()
        var server = ControlServer(supervisor: supervisor, policy: access, socketPath: paths.socket, socketGroup: group)
        // Shorter bounds for tests; the defaults suit people.
        if let t = env["VTARGET_API_HEAD_TIMEOUT"].flatMap(Quantity.parseDuration) { server.limits.headTimeout = .milliseconds(Int64(t * 1000)) }
        if let t = env["VTARGET_API_IDLE_TIMEOUT"].flatMap(Quantity.parseDuration) { server.limits.idleTimeout = .milliseconds(Int64(t * 1000)) }
        printError("vtarget serve: pid \(getpid()) listening on \(paths.socket)")
        try await server.run()
        await supervisor.closeState()
        close(lock)
    }
}

struct Daemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "The per-user supervisor: status, stop.",
        subcommands: [DaemonStatusCommand.self, DaemonStop.self])
}

struct DaemonStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Whether the supervisor runs, and what it holds.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

    @Option(name: .shortAndLong, help: "Output format: text or json.")
    var output: Format = .text

    func run() async throws {
        guard let client = await SupervisorConnection.existing() else {
            printOut("not running (socket \(SupervisorConnection.paths.socket))")
            throw CommandExit(code: 1)
        }
        let s: DaemonStatus
        do { s = try await client.get("/v1/status") } catch { throw error.asCommandError }
        if output == .json { return printOut(String(decoding: try JSONEncoder().encode(s), as: UTF8.self)) }
        printOut("""
            running: pid \(s.pid), up \(Table.age(s.startedAt))
            socket: \(s.socket)
            state: \(s.stateDirectory)
            instances: \(s.instances) (\(s.running) running, \(s.adopted) re-adopted at start)
            """)
    }
}

struct DaemonStop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop the supervisor; instances keep running unless --stop-instances.")

    @Flag(help: "Stop every instance first.")
    var stopInstances = false

    func run() async throws {
        guard let client = await SupervisorConnection.existing() else { return printOut("not running") }
        let status: DaemonStatus
        do {
            status = try await client.get("/v1/status")
            _ = try await client.call(.POST, "/v1/shutdown" + (stopInstances ? "?stopInstances=1" : ""))
        } catch { throw error.asCommandError }
        for _ in 0..<1000 where kill(status.pid, 0) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        printOut("stopped (pid \(status.pid))")
    }
}

/// The resources of -f files, validated and in canonical form.
struct ResourceFiles {

    static func load(_ input: InputSelection) throws -> [AppliedResource] {
        try loadWithSources(input).map(\.resource)
    }

    /// The resources and the documents they came from (for errors that point at them).
    /// `allowEmpty`: no resource at all is a valid answer (`sync` of an empty directory).
    static func loadWithSources(_ input: InputSelection, allowEmpty: Bool = false) throws -> [(resource: AppliedResource, root: YAMLNode)] {
        let env = Environment.variables
        let sources = try InputFiles.sources(input.files, recursive: input.recursive)
        let catalog = try Environment.catalog(env, for: sources)
        let decoded = try ResourceDecoder(catalog: catalog, options: DecodeOptions(
            strict: !input.lenient, allowHostPaths: input.allowHostPaths, allowExtraArgs: input.allowExtraArgs))
            // A VM's instancetype or class may be stored already: the supervisor resolves VMs against all it holds.
            .decode(sources, resolvingVMs: false)
        for w in decoded.warnings { printError(w.description) }
        let options = ReadOptions(lenient: input.lenient, allowHostPaths: input.allowHostPaths, allowExtraArgs: input.allowExtraArgs)
        var out: [(resource: AppliedResource, root: YAMLNode)] = []
        for s in sources {
            for doc in (try? YAMLParser.parse(s.bytes, file: s.path)) ?? [] {
                guard let kind = doc.root["kind"]?.scalar, KindRegistry.builtIn.kind(named: kind) != nil, let name = doc.root["metadata"]?["name"]?.scalar else { continue }
                // Cluster-scoped kinds are in no namespace, as the supervisor keeps them.
                let ns = KindRegistry.builtIn.storedNamespace(kind: kind, doc.root["metadata"]?["namespace"]?.scalar ?? "default")
                out.append((AppliedResource(kind: kind, namespace: ns, name: name, yaml: YAMLEmitter.emit(doc.root),
                                            directory: s.directory, options: options), doc.root))
            }
        }
        if out.isEmpty && !allowEmpty {
            let kinds = KindRegistry.builtIn.kinds.map(\.kind)
            printError("error: no \(kinds.dropLast().joined(separator: ", ")) or \(kinds.last!) in " + input.files.joined(separator: ", "))
            throw CommandExit(code: ExitCode.badInput)
        }
        return out
    }
}

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        _superCommandName: "vtarget",
        abstract: "Create or update resources; instances start (or restart when their spec changed) under the supervisor.",
        discussion: """
            Starts the per-user supervisor if none runs. Unchanged resources are left alone. \
            As in kubectl, -l applies only the input's objects whose labels match, and --prune (only with -l) \
            then deletes the stored objects, in the input's namespaces, that match but are not in the input.
            """)

    @OptionGroup var input: InputOptions

    @Option(name: [.customShort("l"), .long], help: "Only the input's objects whose labels match this selector (kubectl's syntax).")
    var selector: String?

    @Flag(help: "Delete stored objects matching -l, in the input's namespaces, that the input does not have.")
    var prune = false

    @Flag(help: "Wait until every instance the input starts is Ready; exit 1 when one fails first or --timeout passes.")
    var wait = false

    @Option(help: "With --wait: how long to wait (default 60s).")
    var timeout: String?

    /// The same as a plain value (`ApplyArguments`, which `VTarget.fastApply` builds without ArgumentParser).
    var arguments: ApplyArguments {
        ApplyArguments(input: input.selection, selector: selector, prune: prune, wait: wait, timeout: timeout)
    }

    func validate() throws { try arguments.validateApply() }

    func run() async throws { try await arguments.execute() }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        _superCommandName: "vtarget",
        abstract: "Delete resources: those in -f files, or KIND NAME. Their instances stop.",
        discussion: "KIND: \(KindRegistry.builtIn.help); as in kubectl, the singular, plural, Kind and plural.group work too. -f deletes instances, pools and VMs first, then targets, instancetypes, preferences and classes, then ConfigMaps, Secrets and claims. A claim's or DataVolume's volume file goes with it (reclaim policy Delete), and a VM's dataVolumeTemplates' and a Viti Machine's disks with the VM; a claim a stored VM names is not deleted.")

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A YAML file or directory (repeatable).")
    var files: [String] = []

    @Flag(name: [.customShort("R"), .long], help: "Read directories recursively.")
    var recursive = false

    @Option(name: .shortAndLong, help: "The namespace (default: default).")
    var namespace: String?

    @Flag(help: "Succeed when the resource does not exist.")
    var ignoreNotFound = false

    @Argument(help: "KIND NAME") var words: [String] = []

    func validate() throws {
        if files.isEmpty && words.count != 2 { throw ValidationError("give -f FILE, or KIND NAME") }
        if !files.isEmpty && !words.isEmpty { throw ValidationError("give -f FILE or KIND NAME, not both") }
        if words.count == 2 {
            do { _ = try KindRegistry.builtIn.resolve(words[0]) } catch { throw ValidationError(error.description) }
        }
    }

    func run() async throws {
        var targets: [(String, String, String)] = []
        if words.count == 2 {
            targets = [(try KindRegistry.builtIn.resolve(words[0]).kind, namespace ?? "default", words[1])]
        } else {
            let input = try InputOptions.parse(files.flatMap { ["-f", $0] } + (recursive ? ["-R"] : []) + ["--lenient"])
            targets = KindRegistry.builtIn.deleteOrder(try ResourceFiles.load(input.selection), kind: \.kind)
                .map { ($0.kind, $0.namespace, $0.name) }
        }
        let client = try await SupervisorConnection.ensure()
        var failed = false
        for (kind, ns, name) in targets {
            do {
                let r: ObjectResult = try await client.send(.DELETE, "/v1/resources/\(kind)/\(ns)/\(name)")
                printOut("\(Table.qualified(r.kind))/\(r.name) deleted")
            } catch where error.status == 404 && ignoreNotFound {
                continue
            } catch where error.status == 404 && kind == "VirtualTargetInstance" {
                printError("error: " + (await Self.madeByOthers(name, ns, client) ?? error.message))
                failed = true
            } catch {
                printError("error: \(error.message)")
                failed = true
            }
        }
        if failed { throw CommandExit(code: 1) }
    }

    /// An instance `get instances` lists but no VirtualTargetInstance made:
    /// a target's own, or a pool's member. Says which, and what removes it.
    static func madeByOthers(_ name: String, _ ns: String, _ client: ControlClient) async -> String? {
        guard let d = try? await client.get("/v1/instances/\(ns)/\(name)", as: InstanceDescription.self) else { return nil }
        let flag = ns == "default" ? "" : " -n \(ns)"
        if let pool = d.instance.pool {
            return "instance \"\(name)\" is a member of pool \"\(pool)\", not a VirtualTargetInstance: release it (vtarget release \(name)\(flag)), "
                + "or delete the pool (vtarget delete pool \(pool)\(flag))"
        }
        return "instance \"\(name)\" is target \"\(d.instance.target)\"'s own instance, not a VirtualTargetInstance: "
            + "delete the target (vtarget delete target \(d.instance.target)\(flag)), or stop the instance and keep the target (vtarget stop \(name)\(flag))"
    }
}

struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start a stopped (or finished) supervised instance or VM again.",
        discussion: """
            As virtctl start for VMs: a Halted VirtualMachine becomes Always (stored so), a Manual one starts as it is; \
            Always and Once VMs refuse, and so does a VM already running. --paused starts with the guest's CPUs stopped \
            (status Paused) until vtarget resume.
            """)
    @Argument(help: "The instance's or VM's name.") var name: String
    @Option(name: .shortAndLong, help: "Its namespace (default: default).") var namespace: String?
    @Flag(help: "Start with the guest's CPUs stopped (QEMU -S); vtarget resume (or unpause) runs them.") var paused = false

    func run() async throws {
        let r = try await SupervisorConnection.instanceAction("start" + (paused ? "?paused=1" : ""), name, namespace)
        printOut("\(Table.qualified(r.kind))/\(r.name) \(r.action)")
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "What happened to instances, oldest first; -w keeps watching.")
    @OptionGroup var ns: NamespaceOptions
    @Flag(name: .shortAndLong, help: "Keep printing new events.") var watch = false
    enum Format: String, ExpressibleByArgument, CaseIterable { case table, json }
    @Option(name: .shortAndLong, help: "Output format: table or json (one object per line).") var output: Format = .table

    func run() async throws {
        let client = try await SupervisorConnection.ensure()
        let header = (ns.allNamespaces ? ["NAMESPACE"] : []) + ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        func row(_ e: EventInfo) -> [String] {
            (ns.allNamespaces ? [e.namespace] : []) + [Table.age(e.time), e.type, e.reason, "instance/" + e.name, e.message]
        }
        do {
            if watch {
                if output == .table { printOut(Table.render([header], widths: [10, 10, 8, 14, 24, 0])) }
                try await client.stream("/v1/events?watch=1&" + ns.query) { line in
                    if output == .json { printOut(line); return true }
                    if let e = try? JSONDecoder().decode(EventInfo.self, from: Data(line.utf8)) {
                        printOut(Table.render([row(e)], widths: [10, 10, 8, 14, 24, 0]))
                    }
                    return true
                }
                return
            }
            let events: [EventInfo] = try await client.get("/v1/events?" + ns.query)
            if output == .json {
                for e in events { printOut(String(decoding: try JSONEncoder().encode(e), as: UTF8.self)) }
                return
            }
            if events.isEmpty { return printOut("No events found.") }
            printOut(Table.render([header] + events.map(row)))
        } catch let e as ControlError { throw e.asCommandError }
    }
}

struct Claim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claim",
        abstract: "Take a Ready instance from a pool at once; the pool refills behind it.",
        discussion: "Prints the instance's name and endpoints (-o name: the name; -o json: the instance). Fails after --timeout when the pool is exhausted.")

    @Argument(help: "The pool.") var pool: String
    @Option(name: .shortAndLong, help: "Its namespace (default: default).") var namespace: String?
    @Option(help: "Release the instance after this long (overrides the pool's claimTTL).") var ttl: String?
    @Option(help: "How long to wait for a Ready member.") var timeout: String = "30s"
    enum Format: String, ExpressibleByArgument, CaseIterable { case name, json }
    @Option(name: .shortAndLong, help: "name or json (default: the name and endpoints, as text).") var output: Format?

    func validate() throws {
        if let ttl { _ = try durationOption("--ttl", ttl) }
        _ = try durationOption("--timeout", timeout)
    }

    func run() async throws {
        let client = try await SupervisorConnection.ensure()
        var path = "/v1/pools/\(namespace ?? "default")/\(pool)/claim?timeout=\(Quantity.parseDuration(timeout)!)"
        if let ttl { path += "&ttl=\(Quantity.parseDuration(ttl)!)" }
        do {
            let i: InstanceInfo = try await client.send(.POST, path)
            switch output {
            case .name: printOut(i.name)
            case .json: printOut(Table.json(Table.node(i)))
            case nil:
                printOut("instance/\(i.name) claimed from pool \(pool)")
                for (k, v) in i.endpoints.sorted(by: { $0.key < $1.key }) { printOut("  \(k): \(v)") }
            }
        } catch { throw error.asCommandError }
    }
}

struct Release: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Give a claimed instance back to its pool: its snapshot is restored (loadvm), or it restarts.")

    @Argument(help: "The instance.") var name: String
    @Option(name: .shortAndLong, help: "Its namespace (default: default).") var namespace: String?

    func run() async throws {
        let r = try await SupervisorConnection.instanceAction("release", name, namespace)
        printOut("instance/\(r.name) released (\(r.action))")
    }
}

/// A duration flag's seconds; a malformed one, or one above a year, is bad
/// input (exit 2) with the reason, never a value that traps when converted.
func durationOption(_ flag: String, _ text: String, allowZero: Bool = false) throws -> Double {
    do { return try Quantity.duration(text, allowZero: allowZero) } catch { throw ValidationError("\(flag): \(error)") }
}
