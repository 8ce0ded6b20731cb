#if canImport(Glibc)
import Glibc
#endif
import CSpawn
import Synchronization

/// One thread, blocked in epoll_wait, hears every pidfd this process
/// watches. A supervisor with 500 shims used to keep 500 threads for their
/// exits (one per shim, blocked in waitpid or poll); now it keeps one.
public enum PidfdWatch {
    /// Calls `ready` once, on the watch thread, when `pidfd` is readable
    /// (its process has ended). The caller keeps the fd open until then and
    /// closes it after; `ready` must not block. False when the fd cannot be
    /// watched (then nothing is called).
    public static func whenReadable(_ pidfd: Int32, _ ready: @escaping @Sendable () -> Void) -> Bool {
        guard let set = shared else { return false }
        return set.add(pidfd, ready)
    }

    /// Waits until `pidfd` is readable; at once when it cannot be watched.
    public static func readable(_ pidfd: Int32) async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            if !whenReadable(pidfd, { cont.resume() }) { cont.resume() }
        }
    }

    private static let shared: WatchSet? = WatchSet()

    private final class WatchSet: Sendable {
        let epfd: Int32
        let pending = Mutex<[Int32: @Sendable () -> Void]>([:])

        init?() {
            epfd = cspawn_epoll_create()
            guard epfd >= 0 else { return nil }
            var thread = pthread_t()
            var attr = pthread_attr_t()
            pthread_attr_init(&attr)
            pthread_attr_setstacksize(&attr, 64 << 10)
            let box = Unmanaged.passRetained(self).toOpaque()
            let rc = pthread_create(&thread, &attr, { raw in
                Unmanaged<WatchSet>.fromOpaque(raw!).takeRetainedValue().loop()
                return nil
            }, box)
            pthread_attr_destroy(&attr)
            guard rc == 0 else {
                Unmanaged<WatchSet>.fromOpaque(box).release()
                close(epfd)
                return nil
            }
            pthread_detach(thread)
        }

        func add(_ fd: Int32, _ ready: @escaping @Sendable () -> Void) -> Bool {
            // Registered before the fd joins the set: its event cannot come first.
            pending.withLock { $0[fd] = ready }
            guard cspawn_epoll_add_once(epfd, fd) == 0 else {
                pending.withLock { _ = $0.removeValue(forKey: fd) }
                return false
            }
            return true
        }

        private func loop() -> Never {
            var fds = [Int32](repeating: -1, count: 64)
            while true {
                let n = fds.withUnsafeMutableBufferPointer { cspawn_epoll_wait(epfd, $0.baseAddress, 64) }
                guard n > 0 else { continue }
                for fd in fds[0..<Int(n)] {
                    // Out of the set before its owner may close it and reuse the number.
                    _ = cspawn_epoll_remove(epfd, fd)
                    pending.withLock { $0.removeValue(forKey: fd) }?()
                }
            }
        }
    }
}
