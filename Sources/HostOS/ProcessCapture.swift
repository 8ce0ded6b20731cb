#if canImport(Glibc)
import Glibc
#endif
import Sandbox

/// A short child process whose output is read through a pipe: probes, the
/// doctor's sandbox check.
public enum ProcessCapture {
    public struct Result: Sendable {
        public var output: String
        /// The child ended by itself (not killed at the deadline or at `until`).
        public var ended: Bool
        public var status: ExitStatus
    }

    /// `request` gets the pipe's write end to place among the child's fds.
    /// Reads until EOF, until the output contains `until`, or until `deadline`
    /// seconds pass; a child still running then is killed.
    public static func run(until: String? = nil, deadline: Double, request: (Int32) -> SpawnRequest) async throws -> Result {
        let (r, w) = try makePipe()
        let child: ChildProcess
        do {
            child = try await ChildProcess.spawn(request(w))
        } catch {
            close(r); close(w)
            throw error
        }
        close(w)
        defer { close(r) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        let end = monotonicSeconds() + deadline
        var ended = false
        while monotonicSeconds() < end {
            var pfd = pollfd(fd: r, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, Int32(max(0, end - monotonicSeconds()) * 1000) + 1) <= 0 { continue }
            let n = read(r, &buf, buf.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { ended = true; break }
            out += buf[0..<n]
            if let until, String(decoding: out, as: UTF8.self).contains(until) { break }
        }
        if child.exitStatus == nil, !ended { child.signal(SIGKILL) }
        let status = await child.waitForExit()
        return Result(output: String(decoding: out, as: UTF8.self), ended: ended, status: status)
    }
}
