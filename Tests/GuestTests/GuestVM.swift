import DiskImages
import Foundation
import HostOS
import Synchronization
import TestSupport
import Testing

/// The guests of scripts/build-test-guest.sh, built (or found cached) once per test run.
enum TestGuest {
    /// `make test` builds the guests first and names them in the environment
    /// (`VTARGET_TEST_GUEST`, `VTARGET_TEST_CLOUD_GUEST`, empty when that one is
    /// not cached): running the script here would hold a test-runner thread.
    static let busybox: Result<String, ToolFailure> = {
        if let dir = ProcessInfo.processInfo.environment["VTARGET_TEST_GUEST"], !dir.isEmpty { return .success(dir) }
        return build([])
    }()

    /// The cloud-init guest's directory if it is already built, without building it.
    static let cachedCloud: String? = {
        if let dir = ProcessInfo.processInfo.environment["VTARGET_TEST_CLOUD_GUEST"] { return dir.isEmpty ? nil : dir }
        return try? runTool(repoRoot + "/scripts/build-test-guest.sh", ["--cloud", "--cached"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }()

    static func build(_ args: [String]) -> Result<String, ToolFailure> {
        Result {
            try runTool(repoRoot + "/scripts/build-test-guest.sh", args).trimmingCharacters(in: .whitespacesAndNewlines)
        }.mapError { $0 as? ToolFailure ?? ToolFailure(description: "\($0)") }
    }
}

/// A loopback TCP port free right now (for QEMU's hostfwd, a registry).
func freeLoopbackPort() throws -> UInt16 { UInt16(try LoopbackPort.free()) }

/// One HTTP/1.0 GET on 127.0.0.1:port; the whole answer.
func httpGet(port: UInt16) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let connected = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else { throw ToolFailure(description: "connect 127.0.0.1:\(port): errno \(errno)") }
    let request = Array("GET / HTTP/1.0\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var answer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        answer += chunk[0..<n]
    }
    return String(decoding: answer, as: UTF8.self)
}

/// A QEMU whose serial port is its stdin/stdout (pipes, not a terminal): the
/// test reads the console as it arrives and types into it. Killed and reaped
/// by `stop`, which every test calls in a `defer`.
final class GuestVM {
    /// What the console printed, appended from the pipe's reader thread.
    private final class Console: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }

    private let process: Process
    private let input: FileHandle
    private let console = Console()
    let started = ContinuousClock.now

    init(_ binary: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"] + args
        let stdin = Pipe(), stdout = Pipe()
        p.standardInput = stdin
        p.standardOutput = stdout
        p.standardError = stdout
        let console = self.console
        stdout.fileHandleForReading.readabilityHandler = { h in
            let data = h.availableData
            if data.isEmpty { h.readabilityHandler = nil } else { console.bytes.withLock { $0 += data } }
        }
        try p.run()
        process = p
        input = stdin.fileHandleForWriting
    }

    /// The console so far, with the tty's CR of each CRLF taken out.
    var output: String { console.bytes.withLock { String(decoding: $0.filter { $0 != 0x0D }, as: UTF8.self) } }

    /// Waits until the console shows `text` after the first `after` bytes;
    /// returns where it ends. Fails with the console so far on timeout or exit.
    @discardableResult
    func waitFor(_ text: String, after start: String.Index? = nil, timeout: Duration) async throws -> String.Index {
        let deadline = ContinuousClock.now + timeout
        while true {
            let out = output
            if let r = out.range(of: text, range: (start ?? out.startIndex)..<out.endIndex) { return r.upperBound }
            guard process.isRunning else { throw ToolFailure(description: "QEMU exited (\(process.terminationStatus)) before '\(text)':\n\(out.suffix(3000))") }
            guard ContinuousClock.now < deadline else { throw ToolFailure(description: "no '\(text)' within \(timeout):\n\(out.suffix(3000))") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func type(_ line: String) { input.write(Data((line + "\n").utf8)) }

    /// Waits up to `timeout` for QEMU to end by itself; true if it did.
    func waitForExit(timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        return !process.isRunning
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? input.close()
    }
}
