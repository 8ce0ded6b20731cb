/// How a child process ended: one type for the process that spawned it
/// (Sandbox), the session's decisions (SessionCore) and the status a shim
/// reports, so none converts between copies.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    public var description: String {
        switch self {
        case .exited(let c): return "exit code \(c)"
        case .signalled(let s): return "killed by signal \(s)"
        }
    }

    /// The shell's convention: 128+N for a signal.
    public var shellCode: Int32 {
        switch self {
        case .exited(let c): return c
        case .signalled(let s): return 128 + s
        }
    }
}
