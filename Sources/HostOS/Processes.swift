#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
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

    /// Rewrites this process's title (`/proc/self/cmdline`, what `ps` shows)
    /// to `argv`, in place in the memory the kernel reads it from (fields 48
    /// and 49 of /proc/self/stat), as setproctitle does: NUL after each
    /// argument, the rest NULs. False, and nothing written, when it does not
    /// fit. What the process already read of its arguments is its own copy.
    public static func setOwnTitle(_ argv: [String]) -> Bool {
        // Fields 48 and 49 (1-based); `statFields` starts at field 3.
        guard let fields = statFields(of: getpid()), fields.count > 46,
              let start = UInt(fields[45]), let end = UInt(fields[46]), end > start,
              let area = UnsafeMutableRawPointer(bitPattern: start) else { return false }
        var bytes: [UInt8] = []
        for arg in argv {
            bytes += arg.utf8
            bytes.append(0)
        }
        let room = Int(end - start)
        guard bytes.count <= room, !bytes.isEmpty else { return false }
        bytes.withUnsafeBytes { area.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        (area + bytes.count).initializeMemory(as: UInt8.self, repeating: 0, count: room - bytes.count)
        return true
    }

    /// A user's home directory from the password database; nil when the
    /// uid has no entry (ids that exist only as numbers).
    public static func home(of uid: UInt32) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let dir = entry.pw_dir else { return nil }
        return String(cString: dir)
    }

    /// Whether a process with this pid exists (EPERM: it does, as another user's).
    public static func exist(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// The start time (field 22 of /proc/PID/stat, in clock ticks since boot):
    /// with the pid, it names one process even after the pid is reused.
    public static func startTime(of pid: Int32) -> UInt64? {
        guard let fields = statFields(of: pid) else { return nil }
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// /proc/PID/stat from field 3 on: after the command name, which may
    /// hold spaces and parentheses, so it is cut at the last ")".
    static func statFields(of pid: Int32) -> [Substring]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }
}
