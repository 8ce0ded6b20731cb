#if canImport(Glibc)
import Glibc
#endif
import HostOS
import InstanceContract
import MachineCatalog
import QEMULaunch
import SessionCore
import TargetSpec
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
    /// Under the supervisor: who applied the instance. Its sidecars run as
    /// that user, with only the spec's and the endpoints' variables.
    public var sidecarOwner: ProcessOwner?
    /// `run --record` and `replay`: the serial bytes and what QEMU leaves.
    public var capture: RunCapture?
    /// QEMU stays stopped at its first instruction (a debugger continues it).
    public var startPaused = false

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

/// One target, planned and with its directory made; nothing started yet.
public typealias PreparedTarget = (SessionInstance, LaunchPlan, String)

/// `vtarget run`: start every target, stream serial to stdout, decide the
/// exit code, and tear everything down whatever happens. The decisions are
/// `SessionMachine`'s; this is the shell that does what it says.
public struct RunSession: Sendable {
    public var config: RunConfiguration
    let catalog: MachineCatalog

    public init(config: RunConfiguration, catalog: MachineCatalog) {
        self.config = config
        self.catalog = catalog
    }

    /// How long a supervised shim may take from a stopping signal to its
    /// exit, QEMU included, before it exits anyway (the supervisor allows 5 s).
    static let shimStopDeadline = 4.0

    /// Runs prepared targets to the end; returns the process exit code.
    public func run(_ prepared: [PreparedTarget]) async -> Int32 {
        let (events, sink) = AsyncStream<SessionEvent>.makeStream()
        let start = StartGuard()
        // SIGUSR1 is the supervisor's "released to the pool".
        let signals = SignalWatch([SIGINT, SIGTERM, SIGHUP, SIGUSR1], exitAfter: config.supervised == nil ? nil : Self.shimStopDeadline) {
            if $0 == SIGUSR1 {
                sink.yield(.released)
                return
            }
            // The event first: it must come before the QEMU deaths the interrupt causes.
            sink.yield(.signal($0))
            start.interrupt($0)
        }
        defer { signals.cancel() }
        let live: Live
        do {
            live = try Live(session: self, prepared: prepared, sink: sink, start: start)
        } catch {
            note("\(error)")
            config.supervised.map { ShimStatusWriter(path: $0.statusPath) }?.update { s in
                s = .failed(.startFailed, "\(error)")
                s.finishedAt = ShimStatus.now
            }
            return ExitCode.failure
        }
        if await live.boot() {
            await live.drive(events)
        }
        await live.tearDown()
        return live.code
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
