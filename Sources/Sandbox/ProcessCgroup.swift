#if canImport(Glibc)
import Glibc
#endif

/// A cgroup v2 group holding one process and all it starts: the kill that
/// no `setsid` or double fork escapes.
public enum ProcessCgroup {
    /// Kills every process in `directory` (`cgroup.kill` where the kernel
    /// has it, 5.14 and later; else SIGKILL to each listed pid until none is
    /// left), waits up to `timeout` seconds for the group to empty, and
    /// removes it. False when it could not be emptied.
    @discardableResult
    public static func killAndRemove(_ directory: String, timeout: Double = 5) async -> Bool {
        let killFile = directory + "/cgroup.kill"
        let useKillFile = access(killFile, F_OK) == 0
        let deadline = monotonicNow() + timeout
        while true {
            let pids = members(directory)
            if pids.isEmpty { break }
            if useKillFile { _ = write(killFile, "1") } else { for p in pids { kill(p, SIGKILL) } }
            if monotonicNow() > deadline { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return rmdir(directory) == 0 || errno == ENOENT
    }

    /// The pids in the group (none once it is empty or gone).
    public static func members(_ directory: String) -> [pid_t] {
        let fd = open(directory + "/cgroup.procs", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            bytes += buf[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { pid_t($0) }
    }

    static func write(_ path: String, _ value: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        return Glibc.write(fd, bytes, bytes.count) == bytes.count
    }

    static func monotonicNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
