#if canImport(Glibc)
import Glibc
#endif

/// The always-on log of one UART: `<device>.raw` holds the bytes exactly,
/// `<device>.log` the same output as lines stamped with wall-clock (UTC)
/// and monotonic time. Each rotates by size (`.1` is the newest old file);
/// rotation happens between two writes, so no byte is lost to it.
public final class SerialLog: @unchecked Sendable {
    public struct Rotation: Sendable {
        public var maxBytes: Int
        public var files: Int
        public init(maxBytes: Int = 8 << 20, files: Int = 3) {
            self.maxBytes = maxBytes
            self.files = files
        }
    }

    let rawPath: String
    let textPath: String
    let rotation: Rotation
    private var raw: Int32 = -1
    private var text: Int32 = -1
    private var rawSize = 0
    private var textSize = 0
    private var atLineStart = true
    let device: String
    /// Set at the first failed write: a full disk (or a file-size limit)
    /// stops the log, not the UART, and is said once rather than per chunk.
    private var failed = false
    /// Where the failure is said; stderr unless the owner wants it elsewhere.
    let report: @Sendable (String) -> Void

    public init(directory: String, device: String, rotation: Rotation = Rotation(),
                report: @escaping @Sendable (String) -> Void = SerialLog.toStandardError) throws(EndpointError) {
        self.device = device
        self.report = report
        rawPath = directory + "/\(device).raw"
        textPath = directory + "/\(device).log"
        self.rotation = rotation
        raw = try Self.open(rawPath)
        text = try Self.open(textPath)
    }

    static func open(_ path: String) throws(EndpointError) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 { throw EndpointError("cannot open \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    public func append(_ bytes: [UInt8]) {
        if rawSize + bytes.count > rotation.maxBytes, rawSize > 0 { rotate(rawPath, &raw, &rawSize) }
        writeAll(raw, rawPath, bytes[...])
        rawSize += bytes.count

        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 64)
        var stamp: [UInt8] = []
        for b in bytes {
            if atLineStart {
                if stamp.isEmpty { stamp = Self.timestamp() }
                out += stamp
                atLineStart = false
            }
            out.append(b)
            if b == 0x0A { atLineStart = true }
        }
        if textSize + out.count > rotation.maxBytes, textSize > 0 { rotate(textPath, &text, &textSize) }
        writeAll(text, textPath, out[...])
        textSize += out.count
    }

    public func close() {
        if raw >= 0 { Glibc.close(raw); raw = -1 }
        if text >= 0 { Glibc.close(text); text = -1 }
    }

    private func rotate(_ path: String, _ fd: inout Int32, _ size: inout Int) {
        Glibc.close(fd)
        if rotation.files > 0 {
            unlink(path + ".\(rotation.files)")
            for i in stride(from: rotation.files - 1, through: 1, by: -1) {
                rename(path + ".\(i)", path + ".\(i + 1)")
            }
            rename(path, path + ".1")
        } else {
            unlink(path)
        }
        fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 { fail(path, errno) }
        size = 0
    }

    /// Writes are still tried after a failure, so the log picks up again
    /// once there is room; what could not be written is gone from it.
    private func writeAll(_ fd: Int32, _ path: String, _ bytes: ArraySlice<UInt8>) {
        var rest = bytes
        while !rest.isEmpty, fd >= 0 {
            let n = rest.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                fail(path, errno)
                return
            }
            rest = rest.dropFirst(n)
        }
    }

    private func fail(_ path: String, _ code: Int32) {
        guard !failed else { return }
        failed = true
        report("vtarget: \(device): the serial log stopped: cannot write \(path): \(String(cString: strerror(code))); clients still get the output")
    }

    /// One line on stderr, written whole (it may interleave with other output).
    public static let toStandardError: @Sendable (String) -> Void = { message in
        let line = Array((message + "\n").utf8)
        _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    /// `2026-11-23T02:33:20.123456Z 1234.567890 `: wall clock, then monotonic seconds.
    static func timestamp() -> [UInt8] {
        var wall = timespec(), mono = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        clock_gettime(CLOCK_MONOTONIC, &mono)
        var t = time_t(wall.tv_sec)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        let s = "\(pad(Int(tm.tm_year) + 1900, 4))-\(pad(Int(tm.tm_mon) + 1, 2))-\(pad(Int(tm.tm_mday), 2))T"
            + "\(pad(Int(tm.tm_hour), 2)):\(pad(Int(tm.tm_min), 2)):\(pad(Int(tm.tm_sec), 2)).\(pad(wall.tv_nsec / 1000, 6))Z "
            + "\(mono.tv_sec).\(pad(mono.tv_nsec / 1000, 6)) "
        return Array(s.utf8)
    }
}

public struct EndpointError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
