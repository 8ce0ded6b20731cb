#if canImport(Glibc)
import Glibc
#endif
import InstanceContract
import CSpawn
import Synchronization
import HostOS
import Sandbox
import TargetRuntime

/// A process named by pid and start time, so a recycled pid never matches.
struct ProcessIdentity: Sendable, Equatable {
    var pid: Int32
    var startTime: UInt64

    static func of(_ pid: Int32) -> ProcessIdentity? {
        Processes.startTime(of: pid).map { ProcessIdentity(pid: pid, startTime: $0) }
    }

    var isAlive: Bool { Processes.startTime(of: pid) == startTime }

    /// `/proc/PID/exe`, without the " (deleted)" a replaced binary gets.
    var executable: String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        let path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.hasSuffix(" (deleted)") ? String(path.dropLast(10)) : path
    }

    /// Waits until the process has ended. It need not be our child (an adopted
    /// shim's parent is init): its pidfd becomes readable when it exits, which
    /// the process's one `PidfdWatch` thread hears.
    func waitForExit() async {
        let fd = cspawn_pidfd_open(pid)
        guard fd >= 0 else { return }
        // The pidfd pins this process; if the pid was already reused, stop here.
        guard isAlive else { close(fd); return }
        await PidfdWatch.readable(fd)
        close(fd)
    }
}

/// Tells which instance's `status.json` changed, through inotify on each
/// instance's state directory: the shim writes it on Running, on Ready and
/// at the end, and the supervisor hears of it at once without polling.
final class StatusWatcher: Sendable {
    private let fd: Int32
    private let watches = Mutex<[Int32: String]>([:])
    let changes: AsyncStream<String>
    private let sink: AsyncStream<String>.Continuation

    init() {
        fd = inotify_init1(Int32(IN_CLOEXEC))
        (changes, sink) = AsyncStream<String>.makeStream()
        guard fd >= 0 else { return }
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        if pthread_create(&thread, nil, { raw in
            let watcher = Unmanaged<StatusWatcher>.fromOpaque(raw!).takeRetainedValue()
            watcher.readLoop()
            return nil
        }, box) == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<StatusWatcher>.fromOpaque(box).release()
        }
    }

    func watch(_ directory: String, key: String) {
        guard fd >= 0 else { return }
        let wd = inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO | IN_CLOSE_WRITE))
        if wd >= 0 { watches.withLock { $0[wd] = key } }
    }

    func unwatch(key: String) {
        let wds = watches.withLock { w -> [Int32] in
            let hits = w.filter { $0.value == key }.map(\.key)
            for h in hits { w[h] = nil }
            return hits
        }
        for wd in wds { inotify_rm_watch(fd, wd) }
    }

    private func readLoop() {
        var buf = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            var offset = 0
            var keys: [String] = []
            buf.withUnsafeBytes { raw in
                while offset + MemoryLayout<inotify_event>.size <= n {
                    let wd = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let len = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameStart = offset + MemoryLayout<inotify_event>.size
                    let nameBytes = raw[nameStart..<min(nameStart + len, n)].prefix { $0 != 0 }
                    if String(decoding: nameBytes, as: UTF8.self) == InstanceStateLayout.statusFileName, let key = watches.withLock({ $0[wd] }) {
                        keys.append(key)
                    }
                    offset = nameStart + len
                }
            }
            for k in Set(keys) { sink.yield(k) }
        }
    }
}
