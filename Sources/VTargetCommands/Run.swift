import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import MachineCatalog
import QEMULaunch
import Endpoints
import TargetRuntime
import TargetSpec
import YAMLTree

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start targets in the foreground, stream their serial output, tear down on exit (for CI).",
        discussion: """
            Exit code: CMD's when a command is given after --; 0 when --until matched; \
            1 on --timeout, TTL expiry, readiness timeout or a QEMU that dies; 2 on bad input. \
            Ctrl-C or SIGTERM stops every QEMU cleanly (QMP quit, then SIGTERM, then SIGKILL) \
            and removes the run's sockets and files.
            """)

    @OptionGroup var input: InputOptions

    @Option(help: "Exit 0 as soon as serial output matches this regular expression.")
    var until: String?

    @Option(help: "Exit 1 after this long (30s, 5m, 1h30m).")
    var timeout: String?

    @Option(help: "Stop the targets after this long, exit 1 saying \"expired\" (overrides spec.ttl).")
    var ttl: String?

    @Option(help: "Write a JUnit XML report here: a testcase per target boot, readiness, declarative test and command.")
    var junit: String?

    @Flag(name: .customLong("no-sandbox"), help: "Debugging only: QEMU gets no seccomp filter, no_new_privs, rlimits, namespaces or -sandbox.")
    var noSandbox = false

    @Argument(parsing: .postTerminator, help: "A command to run once targets are Ready, with VTARGET_* endpoint variables.")
    var command: [String] = []

    func validate() throws {
        if let until, (try? Regex(until)) == nil { throw ValidationError("--until: not a valid regular expression: \(until)") }
        if let timeout, Quantity.parseDuration(timeout) == nil { throw ValidationError("--timeout: expected \(Quantity.durationHint), got \(timeout)") }
        if let ttl, Quantity.parseDuration(ttl) == nil { throw ValidationError("--ttl: expected \(Quantity.durationHint), got \(ttl)") }
    }

    func run() async throws {
        let env = Environment.variables
        let loaded = try input.load(environment: env)
        let base = RuntimeDirectory.base(environment: env)
        let dropping = !noSandbox && QEMUSandbox.isRoot
        try RuntimeDirectory.ensurePrivate(base, traversable: dropping)
        let runDir = base + "/run-\(getpid())"
        RuntimeDirectory.removeTree(runDir)
        try RuntimeDirectory.ensurePrivate(runDir, traversable: dropping)
        defer { RuntimeDirectory.removeTree(runDir) }

        if noSandbox {
            printError("vtarget: WARNING: --no-sandbox: QEMU runs unconfined, with your privileges, on untrusted firmware")
        } else {
            let missing = await QEMUSandbox.protections(enabled: true).filter { !$0.active }.map(\.name)
            if !missing.isEmpty { printError("vtarget: sandbox: not available here: " + missing.joined(separator: ", ") + " (vtarget doctor says why)") }
        }
        var session = RunSession(config: RunConfiguration(
            until: until, timeoutSeconds: timeout.flatMap(Quantity.parseDuration),
            ttlSeconds: ttl.flatMap(Quantity.parseDuration), command: command,
            environment: env, host: await HostProbe.facts(environment: env, probeKVM: loaded.mayUseKVM),
            launch: LaunchOptions(qemuSandbox: !noSandbox, passImagesAsFDs: dropping), sandbox: !noSandbox), catalog: loaded.catalog)
        var rotation = SerialLog.Rotation()
        if let v = env["VTARGET_LOG_MAX_BYTES"].flatMap(Quantity.parseBytes) { rotation.maxBytes = Int(v) }
        if let v = env["VTARGET_LOG_FILES"].flatMap(Int.init) { rotation.files = v }
        session.config.logRotation = rotation
        session.config.junitPath = junit.map(InputFiles.absolute)
        let dirs = loaded.directories
        let prepared = try await session.prepare(loaded.runnables, runDirectory: runDir) { dirs[$0.location.file] }
        let code = await session.run(prepared)
        if code != 0 { throw CommandExit(code: code) }
    }
}
