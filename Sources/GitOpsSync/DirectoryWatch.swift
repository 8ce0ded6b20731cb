#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A directory (and, recursively, its subdirectories) watched with inotify:
/// one `changes` element per burst of file events, after the burst has been
/// quiet for `quiet` seconds, so an editor's write-rename-chmod is one sync.
///
/// A thread of its own blocks in poll(2) on the inotify descriptor (with a
/// short timeout, so `stop` ends it promptly); the descriptor is its, closed
/// when it ends.
public final class DirectoryWatch: Sendable {
    public let root: String
    public let recursive: Bool
    public let changes: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let stopped = Atomic<Bool>(false)
    private let fd: Int32

    static let mask: UInt32 = UInt32(IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY
                                     | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

    public init(root: String, recursive: Bool, quiet: Double = 0.15) throws(SyncError) {
        self.root = root
        self.recursive = recursive
        (changes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw SyncError(.watch, "inotify_init1: \(String(cString: strerror(errno)))") }
        let reader = Reader(fd: fd, root: root, recursive: recursive, quiet: quiet)
        do { try reader.addTree(root) } catch {
            close(fd)
            throw error
        }
        let box = Unmanaged.passRetained(WatchThread(reader: reader, stopped: self, continuation: continuation)).toOpaque()
        var thread = pthread_t()
        guard pthread_create(&thread, nil, { raw in
            Unmanaged<WatchThread>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box) == 0 else {
            Unmanaged<WatchThread>.fromOpaque(box).release()
            close(fd)
            throw SyncError(.watch, "cannot start the watch thread")
        }
        pthread_detach(thread)
    }

    /// Ends the thread (within its poll timeout), which closes the descriptor and ends `changes`.
    public func stop() { stopped.store(true, ordering: .releasing) }

    var isStopped: Bool { stopped.load(ordering: .acquiring) }

    private final class WatchThread: @unchecked Sendable {
        let reader: Reader
        let watch: DirectoryWatch
        let continuation: AsyncStream<Void>.Continuation

        init(reader: Reader, stopped watch: DirectoryWatch, continuation: AsyncStream<Void>.Continuation) {
            self.reader = reader
            self.watch = watch
            self.continuation = continuation
        }

        func run() {
            defer {
                close(reader.fd)
                continuation.finish()
            }
            var pending = false
            while !watch.isStopped {
                // Quiet this long after a burst: the burst is over.
                let timeout: Int32 = pending ? Int32(reader.quiet * 1000) : 100
                var p = pollfd(fd: reader.fd, events: Int16(POLLIN), revents: 0)
                let n = poll(&p, 1, timeout)
                if n < 0 && errno != EINTR { return }
                if n > 0 {
                    if reader.drain() { pending = true }
                } else if n == 0 && pending {
                    pending = false
                    continuation.yield()
                }
            }
        }
    }

    /// The descriptor's watches: which directory each watch descriptor is.
    private final class Reader: @unchecked Sendable {
        let fd: Int32
        let root: String
        let recursive: Bool
        let quiet: Double
        var directories: [Int32: String] = [:]

        init(fd: Int32, root: String, recursive: Bool, quiet: Double) {
            self.fd = fd
            self.root = root
            self.recursive = recursive
            self.quiet = quiet
        }

        /// Watches `path`, and with `recursive` every directory below it.
        func addTree(_ path: String) throws(SyncError) {
            let wd = inotify_add_watch(fd, path, DirectoryWatch.mask)
            guard wd >= 0 else { throw SyncError(.watch, "cannot watch \(path): \(String(cString: strerror(errno)))") }
            directories[wd] = path
            guard recursive, let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
            for e in entries.sorted() where !e.hasPrefix(".") {
                var st = stat()
                if lstat(path + "/" + e, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { try addTree(path + "/" + e) }
            }
        }

        /// Reads every queued event; true when one concerns a file that
        /// could be read (hidden files, such as editors' swap files, are not).
        /// New subdirectories are watched at once (with `recursive`).
        func drain() -> Bool {
            var relevant = false
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return relevant }
                var offset = 0
                while offset + MemoryLayout<inotify_event>.size <= n {
                    let (wd, mask, length) = buffer.withUnsafeBytes { raw in
                        let e = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                        return (e.wd, e.mask, Int(e.len))
                    }
                    let nameStart = offset + MemoryLayout<inotify_event>.size
                    let nameBytes = buffer[nameStart..<min(nameStart + length, n)].prefix { $0 != 0 }
                    let name = String(decoding: nameBytes, as: UTF8.self)
                    offset = nameStart + length
                    if mask & UInt32(IN_IGNORED) != 0 { directories[wd] = nil; continue }
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 { relevant = true; continue }
                    if name.hasPrefix(".") { continue }
                    relevant = true
                    if recursive, mask & UInt32(IN_ISDIR) != 0, mask & UInt32(IN_CREATE | IN_MOVED_TO) != 0, let dir = directories[wd] {
                        try? addTree(dir + "/" + name)
                    }
                }
            }
        }
    }
}
