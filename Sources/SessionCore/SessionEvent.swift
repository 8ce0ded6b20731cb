import InstanceContract

/// What happens to a session, as its shell reports it. Everything the
/// machine needs is in the event (and the `now` passed with it): it never
/// asks for anything.
public enum SessionEvent: Sendable {
    /// Target `target`'s QEMU is up and connected (its boot testcase).
    case booted(target: Int)
    /// QEMU never got as far as its QMP handshake.
    case bootFailed(target: Int, status: ExitStatus, stderr: String)
    /// Every target booted: timers start, and whatever is ready begins.
    case started
    case serial(target: Int, device: String, bytes: [UInt8])
    case qemuExited(target: Int, status: ExitStatus, stderr: String)
    case commandExited(ExitStatus)
    case sidecarExited(target: Int, name: String, test: Bool, status: ExitStatus)
    /// `--timeout` passed.
    case timeout
    case ttlExpired
    /// Clients now attached to each target's endpoints (0 for targets without idleTTL).
    case idleCheck(clients: [Int])
    case readinessTimeout(target: Int)
    /// A step's `expect` timer; stale tokens (the step already matched) are ignored.
    case stepTimeout(token: Int)
    case signal(Int32)
    /// The supervisor handed a pool member back (SIGUSR1).
    case released
    /// QEMU's run state, read after its STOP or RESUME event: `paused` only
    /// for a `stop` (`vtarget pause`), not for the stop of a savevm or loadvm.
    case runState(target: Int, paused: Bool)
    /// The spec turned out invalid after all (exit 2).
    case invalidSpec(String)
    /// Something the shell did failed (spawning QEMU, a sidecar, the command).
    case startFailed(String)
}

/// Timers the machine arms; each fires as the event of the same name.
public enum SessionTimer: Sendable, Hashable {
    case timeout, ttl, idleCheck
    case readiness(target: Int)
    case step(token: Int)
}

/// What the shell does for the machine, in order.
public enum SessionAction: Sendable, Equatable {
    /// Serial bytes to stdout (prefixed per line when several streams run).
    case output(target: Int, device: String, bytes: [UInt8])
    /// Write out the partial lines `output` held back.
    case flushOutput
    /// One of vtarget's own messages, on stderr.
    case note(String)
    case junit(SessionCase)
    case arm(SessionTimer, seconds: Double)
    /// The target is Ready: its record and status say so, and a pool
    /// member takes its `vt-ready` snapshot now.
    case markReady(target: Int)
    /// Every sidecar of every target, with the endpoints in its environment.
    case startSidecars
    case startCommand
    /// Bytes to a target's UART (a declarative test's `send`).
    case send(target: Int, device: String, bytes: [UInt8])
    /// Back to the pool: stop, reset the serial hubs, `loadvm`, `cont`, report `generation`.
    case release(generation: Int)
    /// The target was paused or resumed: its record and status say so.
    case markPaused(target: Int, paused: Bool)
    /// The run is over: tear down and exit with `code`; the status says `outcome`.
    case finish(code: Int32, outcome: ShimStatus)
}

/// A JUnit testcase, with its output named rather than read (the shell reads it).
public struct SessionCase: Sendable, Equatable {
    public enum Output: Sendable, Equatable {
        case text(String)
        /// The target's recent serial output.
        case recentSerial(target: Int)
        /// A sidecar's log, then the target's recent serial output.
        case sidecarLog(target: Int, name: String)
    }

    public var classname: String
    public var name: String
    public var seconds: Double
    public var failure: String?
    public var output: Output?

    public init(classname: String, name: String, seconds: Double, failure: String? = nil, output: Output? = nil) {
        self.classname = classname
        self.name = name
        self.seconds = seconds
        self.failure = failure
        self.output = output
    }
}
