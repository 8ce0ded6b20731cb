#if canImport(Glibc)
import Glibc
#endif
import HostOS
import QMP

/// A session with the qemu-guest-agent of a VM, on the unix socket QEMU
/// listens on for its `org.qemu.guest_agent.0` port.
///
/// The agent keeps no session: whatever a previous client left unread may
/// still come, so every session begins with `guest-sync-delimited` (the
/// agent answers after a 0xFF byte, which ends the stale bytes) and only an
/// answer carrying our random id counts. The request itself goes after a
/// 0xFF byte of ours, as the agent's protocol asks: its JSON parser keeps
/// whatever part of a request a previous client left (one killed
/// mid-write), and without the 0xFF our sync would be read as the rest of
/// that request and never answered. QEMU's socket takes one client at a
/// time: a session is short (connect, ask, close), never held open.
/// Blocking I/O bounded by `poll`: each call waits at most its timeout.
public final class GuestAgent {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var closed = false

    /// Connects and synchronises; an agent that does not answer within
    /// `timeout` (none in the guest, or not started yet) is `.notFound`.
    public init(path: String, timeout: Double = 3) throws(RuntimeError) {
        fd = try FileDescriptors.connectUnix(path)
        let id = Int.random(in: 1...Int(Int32.max))
        do {
            try send(.object(["execute": .string("guest-sync-delimited"), "arguments": .object(["id": .number(Double(id))])]), flushingParser: true)
            let deadline = monotonicSeconds() + timeout
            // Everything up to the last 0xFF is stale or the delimiter itself.
            while true {
                let line = try readLine(until: deadline)
                if let ff = line.lastIndex(of: 0xFF) {
                    if let answer = try? JSONValue.parse(line[(ff + 1)...]), answer["return"] == .number(Double(id)) { break }
                } else if let answer = try? JSONValue.parse(line), answer["return"] == .number(Double(id)) {
                    break
                }
            }
        } catch {
            close()
            throw RuntimeError("guest agent not connected (no answer on \(path) within \(Int(timeout))s): "
                + "the guest needs qemu-guest-agent running", code: .notFound, cause: error)
        }
    }

    deinit { close() }

    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    /// One command's `return`; an agent `error` is a RuntimeError with its description.
    public func execute(_ command: String, arguments: JSONValue? = nil, timeout: Double = 10) throws(RuntimeError) -> JSONValue {
        var request: [String: JSONValue] = ["execute": .string(command)]
        if let arguments { request["arguments"] = arguments }
        try send(.object(request))
        let deadline = monotonicSeconds() + timeout
        while true {
            let line = try readLine(until: deadline)
            guard let answer = try? JSONValue.parse(line) else { continue }
            if let value = answer["return"] { return value }
            if let error = answer["error"] {
                throw RuntimeError("guest agent: \(command): " + (error["desc"]?.stringValue ?? error.description), code: .io)
            }
        }
    }

    /// A command the agent does not answer when it succeeds (`guest-shutdown`):
    /// sent, then an error within `grace` is reported and silence is success.
    public func executeUnanswered(_ command: String, arguments: JSONValue? = nil, grace: Double = 2) throws(RuntimeError) {
        do {
            _ = try execute(command, arguments: arguments, timeout: grace)
        } catch where error.code == .timeout || error.code == .io && error.message.hasPrefix("guest agent closed") {
            return
        }
    }

    private func send(_ value: JSONValue, flushingParser: Bool = false) throws(RuntimeError) {
        guard FileDescriptors.writeAll(fd, (flushingParser ? [0xFF] : []) + value.serialized() + [0x0A]) else {
            throw RuntimeError("guest agent: write: \(String(cString: strerror(errno)))", code: .io)
        }
    }

    /// The next newline-terminated line (without the newline).
    private func readLine(until deadline: Double) throws(RuntimeError) -> [UInt8] {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                return line
            }
            let left = deadline - monotonicSeconds()
            guard left > 0 else { throw RuntimeError("guest agent: no answer in time", code: .timeout) }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, Int32(min(left * 1000, 60_000)) + 1)
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw RuntimeError("guest agent closed the connection", code: .io) }
            buffer += chunk[..<n]
        }
    }
}
