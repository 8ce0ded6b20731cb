import Crypto
#if canImport(Glibc)
import Glibc
#endif
import HostOS

/// sha256 and size of a file, read in 1 MiB pieces (firmware, replay logs
/// and the QEMU binary are read whole only through the hash).
public enum FileDigest {
    public static func sha256(_ path: String) throws(RuntimeError) -> (digest: String, size: UInt64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RuntimeError("cannot read \(path): \(String(cString: strerror(errno)))", code: .notFound) }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var size: UInt64 = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw RuntimeError("cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            hasher.update(data: buffer[0..<n])
            size += UInt64(n)
        }
        return (hex(Array(hasher.finalize())), size)
    }

    public static func sha256(bytes: [UInt8]) -> String {
        hex(Array(SHA256.hash(data: bytes)))
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(bytes.count * 2)
        for b in bytes {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 15)])
        }
        return s
    }
}
