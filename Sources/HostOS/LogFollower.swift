#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Reads a log that rotates underneath it (`x.raw`, `x.raw.1`, ...): follows
/// the live file by inode and finishes a renamed one before moving on.
public struct LogFollower {
    let path: String
    private var fd: Int32 = -1
    private var inode: ino_t = 0

    /// `fromStart` reads the rotated files, oldest first, then the live one;
    /// otherwise only what is written from now on.
    public init(path: String, fromStart: Bool, rotatedFiles: Int = 16) {
        self.path = path
        if fromStart {
            backlog = []
            for i in stride(from: rotatedFiles, through: 1, by: -1) {
                if let data = FileManager.default.contents(atPath: path + ".\(i)") { backlog += data }
            }
        }
        openLive(seekEnd: !fromStart)
    }

    private var backlog: [UInt8] = []

    private mutating func openLive(seekEnd: Bool) {
        if fd >= 0 { close(fd) }
        fd = open(path, O_RDONLY | O_CLOEXEC)
        var st = stat()
        if fd >= 0, fstat(fd, &st) == 0 {
            inode = st.st_ino
            if seekEnd { lseek(fd, 0, SEEK_END) }
        }
    }

    /// New bytes since the last call (empty when there are none yet).
    public mutating func read() -> [UInt8] {
        var out = backlog
        backlog = []
        out += drain()
        var st = stat()
        if stat(path, &st) == 0, st.st_ino != inode {
            out += drain()  // the rest of the file that was rotated away
            openLive(seekEnd: false)
            out += drain()
        }
        return out
    }

    private func drain() -> [UInt8] {
        guard fd >= 0 else { return [] }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return out }
            out += buf[0..<n]
        }
    }

}
