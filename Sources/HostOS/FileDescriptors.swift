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
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }

    /// `writeAll` from memory the caller holds (a slice of a larger read, say), copying nothing.
    @discardableResult
    public static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
    }

    /// Exactly `count` bytes, retrying short reads and EINTR; nil at end
    /// of file or on error before that many came.
    public static func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes[done...].withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            done += n
        }
        return bytes
    }

    /// The first `count` bytes of the file at `path`: fewer when it is
    /// shorter, none when it cannot be read (what a format is told from).
    public static func head(_ path: String, _ count: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes[done...].withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            done += n
        }
        return Array(bytes[..<done])
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

    /// Writes `bytes` to a fresh temp file beside `path` (hidden, or
    /// `staging`), then renames it into place: whoever reads `path`
    /// (polling, or inotify on IN_MOVED_TO) sees the old file or the whole
    /// new one, never half of it, and two writers at once each rename a
    /// whole file. With `sync` the bytes are on disk before the rename.
    /// Plain open, write and rename: FileManager.createFile took 4-20 ms a
    /// call here (its own temporary file and more), and a shim writes its
    /// status on the way to Ready.
    /// Any contiguous bytes (an array, a slice of a larger read) go out
    /// without a copy.
    public static func replaceFile(_ path: String, with bytes: some ContiguousBytes, staging: String? = nil, sync: Bool = false) throws(RuntimeError) {
        let failure = bytes.withUnsafeBytes { buffer -> RuntimeError? in
            do throws(RuntimeError) { try replaceFile(path, with: buffer, staging: staging, sync: sync) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    /// `replaceFile` from memory the caller holds.
    public static func replaceFile(_ path: String, with bytes: UnsafeRawBufferPointer, staging: String? = nil, sync: Bool = false) throws(RuntimeError) {
        let slash = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        let temp = staging ?? String(path[..<slash]) + "." + path[slash...] + ".tmp-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw RuntimeError("cannot create \(temp): \(String(cString: strerror(errno)))") }
        let written = writeAll(fd, bytes)
        var failure = written ? 0 : errno
        if written && sync { fsync(fd) }
        if close(fd) != 0 && failure == 0 { failure = errno }
        guard failure == 0 else {
            unlink(temp)
            throw RuntimeError("cannot write \(temp): \(String(cString: strerror(failure)))")
        }
        guard rename(temp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw RuntimeError("cannot move \(temp) to \(path): \(reason)")
        }
    }

    /// `replaceFile` for run-time files (status, records) whose writers go
    /// on without them: no fsync, as a reboot makes them stale anyway.
    @discardableResult
    public static func replaceFile(_ path: String, with data: Data) -> Bool {
        (try? replaceFile(path, with: [UInt8](data))) != nil
    }
}
