#if canImport(Glibc)
import Glibc
#endif
import HostOS
import QMP

/// A blocking QMP client, left only for the supervisor's `restoreSnapshot`,
/// which the shim's own release (SIGUSR1: stop, hubs reset, loadvm, cont)
/// makes unnecessary. Everything else uses `QMPClient.connect(path:timeout:)`.
/// Goes with that call site.
@available(*, deprecated, message: "use QMPClient.connect(path:timeout:); the shim restores its snapshot on SIGUSR1")
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
            throw RuntimeError("QMP error \(e?["class"]?.stringValue ?? "?"): \(e?["desc"]?.stringValue ?? "\(m)")", code: .qmp)
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
