import Foundation
import InstanceContract
import Testing

/// A client of a unix socket, for what socat cannot tell: when the server hangs up.
final class UnixClient {
    let fd: Int32

    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            close(fd)
            throw CocoaError(.fileReadNoSuchFile)
        }
    }

    deinit { close(fd) }

    func send(_ text: String) { _ = text.withCString { write(fd, $0, strlen($0)) } }

    /// What arrives within `seconds`, and whether the server closed the connection.
    func read(seconds: Double, until marker: String? = nil) -> (text: String, closed: Bool) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let n = Glibc.read(fd, &buf, buf.count)
            if n <= 0 { return (String(decoding: out, as: UTF8.self), true) }
            out += buf[0..<n]
            if let marker, String(decoding: out, as: UTF8.self).contains(marker) { break }
        }
        return (String(decoding: out, as: UTF8.self), false)
    }
}

/// The shim's side of a pool release (SIGUSR1), driven without a
/// supervisor: stop, every serial hub reset, loadvm, cont, and a report.
@Suite(.serialized) struct ShimReleaseTests {
    @Test func releaseRestoresTheSnapshotDropsTheClaimerAndReports() throws {
        let f = try ShimFixture(name: "warm", board: "mps2-an385", poolSnapshot: true)
        try f.start()
        f.sendGo()
        let ready = f.waitForStatus { $0.ready && $0.snapshot == true }
        try #require(ready != nil, "no Ready snapshot: \(String(describing: f.status))")
        let pid = try #require(f.process?.processIdentifier)
        let uart = f.layout.serialSocket("uart0")

        // The claimer's session: a client that talks to the guest.
        let claimer = try UnixClient(uart)
        claimer.send("ping\r")
        #expect(claimer.read(seconds: 5, until: "pong").text.contains("pong"))

        kill(pid, SIGUSR1)
        let first = f.waitForStatus(seconds: 10) { $0.release != nil }?.release
        #expect(first == ReleaseReport(generation: 1, restored: true))
        #expect(claimer.read(seconds: 3).closed, "the previous claimer's client is still attached")

        // The next claimer sees none of it, and the guest runs again.
        let next = try UnixClient(uart)
        let replay = next.read(seconds: 0.5).text
        #expect(!replay.contains("pong"), "replayed after release: \(replay)")
        next.send("ping\r")
        #expect(next.read(seconds: 5, until: "pong").text.contains("pong"), "the restored guest does not echo")

        kill(pid, SIGUSR1)
        #expect(f.waitForStatus(seconds: 10) { $0.release?.generation == 2 }?.release?.restored == true)
        #expect(f.status?.phase == .running)
        #expect(f.terminate() != nil)
    }

    /// A member whose board keeps no snapshot still drops its claimer, and says it restored nothing.
    @Test func releaseWithoutASnapshotReportsNotRestored() throws {
        let f = try ShimFixture(name: "cold", board: "lm3s6965evb", poolSnapshot: true)
        try f.start()
        f.sendGo()
        try #require(f.waitForStatus { $0.ready } != nil)
        let pid = try #require(f.process?.processIdentifier)
        let claimer = try UnixClient(f.layout.serialSocket("uart0"))
        kill(pid, SIGUSR1)
        let report = f.waitForStatus(seconds: 10) { $0.release != nil }?.release
        #expect(report?.generation == 1 && report?.restored == false)
        #expect(report?.message?.contains("no vt-ready snapshot") == true, "\(String(describing: report))")
        #expect(claimer.read(seconds: 3).closed)
        #expect(f.terminate() != nil)
    }
}
