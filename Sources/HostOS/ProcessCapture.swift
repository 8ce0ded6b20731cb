#if canImport(Glibc)
import Glibc
#endif
import InstanceContract
import Sandbox

/// A short child process whose output is read through pipes: probes, the
/// doctor's sandbox check, qemu-img.
public enum ProcessCapture {
    public struct Result: Sendable {
        public var output: String
        /// The child ended by itself (not killed at the deadline or at `until`).
        public var ended: Bool
        public var status: ExitStatus
    }

    /// What a child wrote to its stdout and stderr, kept apart: a tool's
    /// machine-readable answer and its complaints.
    public struct Separated: Sendable {
        public var stdout: [UInt8]
        public var stderr: String
        public var ended: Bool
        public var status: ExitStatus

        /// stderr on one line (its lines joined by "; "), for an error message.
        public var said: String { stderr.split(separator: "\n").joined(separator: "; ") }
    }

    /// `request` gets the pipe's write end to place among the child's fds.
    /// Reads until EOF, until the output contains `until`, or until `deadline`
    /// seconds pass; a child still running then is killed.
    public static func run(until: String? = nil, deadline: Double, request: (Int32) -> SpawnRequest) async throws -> Result {
        let r = try await capture(pipes: 1, until: until, deadline: deadline) { request($0[0]) }
        return Result(output: String(decoding: r.outputs[0], as: UTF8.self), ended: r.ended, status: r.status)
    }

    /// A command-line tool (qemu-img, genisoimage, tar, gzip, diff) run as
    /// every wrapper of one runs it: no stdin, an environment of `PATH` and
    /// `LC_ALL=C` only, stderr captured, and stdout captured too unless
    /// `stdout` names the fd it writes to (a file the caller opened).
    public static func runTool(_ executable: String, _ arguments: [String], deadline: Double, stdout: Int32? = nil) async throws -> Separated {
        try await runSeparated(deadline: deadline) { out, err in
            SpawnRequest(executable: executable, arguments: arguments, environment: ["PATH=/usr/bin:/bin", "LC_ALL=C"], fds: [-1, stdout ?? out, err])
        }
    }

    /// As `run`, with a pipe for stdout and another for stderr.
    public static func runSeparated(deadline: Double, request: (_ stdout: Int32, _ stderr: Int32) -> SpawnRequest) async throws -> Separated {
        let r = try await capture(pipes: 2, until: nil, deadline: deadline) { request($0[0], $0[1]) }
        return Separated(stdout: r.outputs[0], stderr: String(decoding: r.outputs[1], as: UTF8.self), ended: r.ended, status: r.status)
    }

    /// Reads every pipe until all reach EOF, the first holds `until`, or the deadline.
    private static func capture(pipes count: Int, until: String?, deadline: Double,
                                request: ([Int32]) -> SpawnRequest) async throws -> (outputs: [[UInt8]], ended: Bool, status: ExitStatus) {
        var reads: [Int32] = [], writes: [Int32] = []
        do {
            for _ in 0..<count {
                let (r, w) = try makePipe()
                reads.append(r)
                writes.append(w)
            }
        } catch {
            for fd in reads + writes { close(fd) }
            throw error
        }
        let child: ChildProcess
        do {
            child = try await ChildProcess.spawn(request(writes))
        } catch {
            for fd in reads + writes { close(fd) }
            throw error
        }
        for fd in writes { close(fd) }
        defer { for fd in reads { close(fd) } }
        var outputs = [[UInt8]](repeating: [], count: count)
        var open = Array(reads.indices)
        var buf = [UInt8](repeating: 0, count: 65536)
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int64(deadline * 1000))
        reading: while !open.isEmpty, clock.now < end {
            var pfds = open.map { pollfd(fd: reads[$0], events: Int16(POLLIN), revents: 0) }
            let left = end - clock.now
            let ms = Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1
            if poll(&pfds, nfds_t(pfds.count), ms) <= 0 { continue }
            for (slot, p) in zip(open, pfds) where p.revents != 0 {
                let n = read(reads[slot], &buf, buf.count)
                if n < 0, errno == EINTR { continue }
                if n <= 0 {
                    open.removeAll { $0 == slot }
                    continue
                }
                outputs[slot] += buf[0..<n]
                if slot == 0, let until, String(decoding: outputs[0], as: UTF8.self).contains(until) { break reading }
            }
        }
        let ended = open.isEmpty
        if child.exitStatus == nil, !ended { child.signal(SIGKILL) }
        let status = await child.waitForExit()
        return (outputs, ended, status)
    }
}
