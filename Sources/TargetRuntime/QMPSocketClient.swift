#if canImport(Glibc)
import Glibc
#endif
import QMP

/// A blocking QMP client for one-shot CLI verbs (`vtarget qmp|hmp|pause|stop`):
/// a short-lived process needs no event loop. It talks to an instance's QMP
/// proxy like any other client; events that arrive meanwhile are kept.
public final class QMPSocketClient {
    private let fd: Int32
    private var splitter = JSONStreamSplitter()
    private var pending: [JSONValue] = []
    private var counter = 0
    public private(set) var events: [JSONValue] = []

    public init(path: String, timeout: Double = 10) throws(RuntimeError) {
        fd = try FileDescriptors.connectUnix(path)
        _ = try next(timeout: timeout)  // greeting
        _ = try execute(.object(["execute": .string("qmp_capabilities")]), timeout: timeout)
    }

    deinit { close(fd) }

    /// Sends one command object and returns its `return` value.
    public func execute(_ command: JSONValue, timeout: Double = 10) throws(RuntimeError) -> JSONValue {
        guard case .object(var object) = command else { throw RuntimeError("a QMP command is a JSON object") }
        counter += 1
        let id = JSONValue.string("vtarget-cli-\(counter)")
        object["id"] = id
        guard FileDescriptors.writeAll(fd, JSONValue.object(object).serialized() + [0x0A]) else {
            throw RuntimeError("QMP write: \(String(cString: strerror(errno)))")
        }
        while true {
            let m = try next(timeout: timeout)
            if m["event"] != nil { events.append(m); continue }
            guard m["id"] == id else { continue }
            if let r = m["return"] { return r }
            let e = m["error"]
            throw RuntimeError("QMP error \(e?["class"]?.stringValue ?? "?"): \(e?["desc"]?.stringValue ?? "\(m)")")
        }
    }

    /// Waits for an event called `name`, including ones already received.
    public func waitForEvent(_ name: String, timeout: Double) -> JSONValue? {
        if let e = events.first(where: { $0["event"]?.stringValue == name }) { return e }
        let end = monotonicSeconds() + timeout
        while monotonicSeconds() < end {
            guard let m = try? next(timeout: end - monotonicSeconds()) else { return nil }
            if m["event"]?.stringValue == name { return m }
        }
        return nil
    }

    private func next(timeout: Double) throws(RuntimeError) -> JSONValue {
        let end = monotonicSeconds() + timeout
        var buf = [UInt8](repeating: 0, count: 65536)
        while pending.isEmpty {
            let left = end - monotonicSeconds()
            guard left > 0 else { throw RuntimeError("QMP: no answer within \(Int(timeout))s") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, Int32(left * 1000) + 1) <= 0 { continue }
            let n = read(fd, &buf, buf.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { throw RuntimeError("QMP connection closed (the instance stopped?)") }
            do {
                for text in try splitter.append(buf[0..<n]) {
                    if let v = try? JSONValue.parse(text) { pending.append(v) }
                }
            } catch {
                throw RuntimeError("QMP: malformed input from the proxy")
            }
        }
        return pending.removeFirst()
    }
}

/// Seconds on the monotonic clock, for deadlines.
public func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

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
                if let data = try? InputFiles.readFile(path + ".\(i)") { backlog += data }
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
