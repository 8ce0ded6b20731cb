#if canImport(Glibc)
import Glibc
#endif
import HostOS
import Sandbox
import Synchronization

/// While its targets start, a session reads no events, and a QEMU that
/// never answers its QMP handshake would keep it there for good, with a
/// SIGTERM caught and never acted on (seen: shims in `sigsuspend` until
/// the supervisor's SIGKILL). So a stopping signal during the start kills
/// what has been spawned so far: the start fails at once, and the session
/// reports the signal rather than a failed boot.
final class StartGuard: Sendable {
    private struct State {
        var starting = true
        var signal: Int32?
        var children: [ChildProcess] = []
    }

    private let state = Mutex(State())

    /// A QEMU just spawned; killed at once when a signal already came.
    func spawned(_ child: ChildProcess) {
        let late = state.withLock { s in
            s.children.append(child)
            return s.signal != nil
        }
        if late { child.signal(SIGKILL) }
    }

    /// A stopping signal: during the start, every QEMU spawned goes.
    func interrupt(_ signal: Int32) {
        let victims = state.withLock { s -> [ChildProcess] in
            guard s.starting, s.signal == nil else { return [] }
            s.signal = signal
            return s.children
        }
        for c in victims { c.signal(SIGKILL) }
    }

    /// The signal that interrupted the start, if one did.
    var signal: Int32? { state.withLock { $0.signal } }

    /// The start is over: from now on the session's event loop hears signals.
    func started() {
        state.withLock { $0.starting = false }
    }
}
