#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The few raw-descriptor operations the CLI and the runtime share.
public enum FileDescriptors {
    /// Writes all of `bytes`, retrying short writes and EINTR; false on error.
    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
    }

    /// A connected AF_UNIX stream socket (close-on-exec).
    public static func connectUnix(_ path: String) throws(RuntimeError) -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw RuntimeError("socket path too long: \(path)")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RuntimeError("socket: \(String(cString: strerror(errno)))") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw RuntimeError("cannot connect to \(path): \(String(cString: strerror(e)))")
        }
        return fd
    }

    /// Writes `data` beside `path`, then renames it into place: whoever reads
    /// `path` (polling, or inotify on IN_MOVED_TO) sees the old file or the
    /// whole new one, never half of it.
    /// Plain open, write and rename: FileManager.createFile took 4-20 ms
    /// a call here (its own temporary file and more), and a shim writes its
    /// status on the way to Ready. No fsync: these are run-time files
    /// (status, records) that a reboot makes stale anyway.
    @discardableResult
    public static func replaceFile(_ path: String, with data: Data) -> Bool {
        let slash = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        let tmp = String(path[..<slash]) + "." + path[slash...] + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { return false }
        let written = writeAll(fd, [UInt8](data))
        guard close(fd) == 0, written else {
            unlink(tmp)
            return false
        }
        return rename(tmp, path) == 0
    }
}
