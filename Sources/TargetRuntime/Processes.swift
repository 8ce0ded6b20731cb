#if canImport(Glibc)
import Glibc
#endif

/// Facts about processes on this machine that the CLI and the runtime share.
public enum Processes {
    /// This binary's own path: the supervisor, the shims and the bus hosts are copies of it.
    public static var ownExecutable: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }

    /// Whether a process with this pid exists (EPERM: it does, as another user's).
    public static func exist(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }
}
