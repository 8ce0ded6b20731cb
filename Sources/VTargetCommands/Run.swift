import ArgumentParser

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        _superCommandName: "vtarget",
        abstract: "Start targets and VMs in the foreground, stream their serial output, tear down on exit (for CI).",
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

    @OptionGroup var recording: RecordOptions

    @OptionGroup(visibility: .private) var supervisedOptions: SupervisedRunOptions

    @Argument(parsing: .postTerminator, help: "A command to run once targets are Ready, with VTARGET_* endpoint variables.")
    var command: [String] = []

    /// The same request `RunRequest.parse` makes of the common command lines.
    var request: RunRequest {
        RunRequest(input: input.selection, until: until, timeout: timeout, ttl: ttl, junit: junit, noSandbox: noSandbox,
                   recording: recording.settings, shim: supervisedOptions.shim, command: command)
    }

    func validate() throws { try request.validateRun() }

    func run() async throws { try await request.execute() }
}

/// How the supervisor starts a `vtarget run` for one instance (hidden from --help).
struct SupervisedRunOptions: ParsableArguments {
    @Option(help: "Set by the supervisor: the shim's settings (InstanceContract.ShimArguments as JSON).")
    var shim: String?
}
