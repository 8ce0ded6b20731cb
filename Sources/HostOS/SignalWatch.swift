#if canImport(Glibc)
import Glibc
#endif
import Sandbox

/// SIGINT/SIGTERM/SIGHUP (and SIGUSR1) as events rather than process death.
///
/// A real handler writes the signal number to a pipe that a thread of its
/// own reads. Dispatch signal sources are not used: on Linux they set
/// SIG_IGN and block the signal only in one thread, so a signal the kernel
/// hands to any other thread is discarded (seen: a supervisor's SIGTERM to a
/// freshly started shim was lost that way).
///
/// A handled signal only asks the process to stop; whoever listens may be
/// busy (starting QEMU, tearing down) or gone. So, with `exitAfter`, a
/// stopping signal also starts a deadline on the reader thread, which needs
/// no event loop or task to run: if the process is still there when it
/// passes, it exits with 128+N, and the kernel's parent-death signal takes
/// every QEMU with it. `cancel()` restores the default actions instead of
/// ignoring the signals, so a process busy exiting still dies of one.
/// SIGUSR1 (a pool release) never stops anything.
public final class SignalWatch: @unchecked Sendable {
    private let signals: [Int32]
    private let writeEnd: Int32

    /// `exitAfter`: seconds from the first signal other than SIGUSR1 to `_exit`.
    public init(_ signals: [Int32], exitAfter: Double? = nil, _ handler: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        let ends: (Int32, Int32) = (try? makePipe()) ?? (-1, -1)
        writeEnd = ends.1
        SignalPipe.writeFD = ends.1
        let box = Unmanaged.passRetained(Reader(fd: ends.0, exitAfter: exitAfter, handler: handler)).toOpaque()
        var thread = pthread_t()
        if pthread_create(&thread, nil, { raw in
            Unmanaged<Reader>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box) == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<Reader>.fromOpaque(box).release()
        }
        for s in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                let saved = errno
                var b = UInt8(truncatingIfNeeded: sig)
                _ = write(SignalPipe.writeFD, &b, 1)
                errno = saved
            }
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(s, &action, nil)
        }
    }

    /// Back to the default actions (SIGUSR1, which asks nothing of a
    /// process on its way out, is ignored); the reader thread ends (its
    /// deadline, if one runs, still ends the process when exiting takes too long).
    public func cancel() {
        for s in signals { signal(s, s == SIGUSR1 ? SIG_IGN : SIG_DFL) }
        var zero: UInt8 = 0
        _ = write(writeEnd, &zero, 1)
        close(writeEnd)
    }

    private final class Reader: @unchecked Sendable {
        let fd: Int32
        let exitAfter: Double?
        let handler: @Sendable (Int32) -> Void

        init(fd: Int32, exitAfter: Double?, handler: @escaping @Sendable (Int32) -> Void) {
            self.fd = fd
            self.exitAfter = exitAfter
            self.handler = handler
        }

        func run() {
            var deadline: Double?
            var exitCode: Int32 = 1
            var b: UInt8 = 0
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let wait = deadline.map { Int32(max(0, ($0 - monotonicSeconds()) * 1000)) + 1 } ?? -1
                let ready = poll(&pfd, 1, wait)
                if let d = deadline, monotonicSeconds() >= d { _exit(exitCode) }
                if ready <= 0 { continue }
                let n = read(fd, &b, 1)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 || b == 0 { break }  // cancel()
                let sig = Int32(b)
                if let after = exitAfter, sig != SIGUSR1, deadline == nil {
                    deadline = monotonicSeconds() + after
                    exitCode = 128 + sig
                }
                handler(sig)
            }
            close(fd)
            // Cancelled while stopping: exiting must not take longer than stopping would.
            guard let deadline else { return }
            let left = deadline - monotonicSeconds()
            if left > 0 { usleep(UInt32(left * 1_000_000)) }
            _exit(exitCode)
        }
    }
}

/// The write end the C signal handler uses (it can capture nothing).
enum SignalPipe {
    /// Set once, before any handler is installed; one SignalWatch per process.
    nonisolated(unsafe) static var writeFD: Int32 = -1
}
