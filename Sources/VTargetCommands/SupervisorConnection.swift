#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import InstanceContract
import Sandbox
import HostOS
import TargetRuntime

/// Reaching the per-user supervisor, starting it when there is none.
enum SupervisorConnection {
    static var paths: SupervisorPaths { SupervisorPaths(environment: Environment.variables) }

    /// A client for a supervisor that listens, or nil. A bare connect(2) is
    /// the probe: an HTTP round trip here would be paid again by the real
    /// request (a `get` is a whole process; every millisecond shows).
    static func existing() async -> ControlClient? {
        guard let fd = try? FileDescriptors.connectUnix(paths.socket) else { return nil }
        close(fd)
        return ControlClient(socketPath: paths.socket)
    }

    /// A client for the running supervisor; without one, `vtarget serve`
    /// is started detached (own session, output in its log) and waited for.
    static func ensure() async throws -> ControlClient {
        if let c = await existing() { return c }
        let p = paths
        try RuntimeDirectory.ensurePrivate(p.runtimeDirectory, traversable: QEMUSandbox.isRoot)
        try FileManager.default.createDirectory(atPath: p.stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let log = open(p.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        defer { if log >= 0 { close(log) } }
        let child = try await ChildProcess.spawn(SpawnRequest(
            executable: Environment.executable, arguments: ["serve"],
            environment: Environment.variables.map { "\($0.key)=\($0.value)" }, workingDirectory: "/",
            fds: [-1, log, log], newSession: true, parentDeathSignal: 0))
        let client = ControlClient(socketPath: p.socket)
        for _ in 0..<1500 {
            if await existing() != nil { return client }
            // Another CLI may have started one at the same moment: it holds
            // the lock and may still be recovering; wait for it to listen.
            if let status = child.exitStatus, !lockHeld(p.lock) {
                if let c = await existing() { return c }
                throw RuntimeError("the supervisor did not start (\(status)); its log \(p.log) says:\n" + tail(p.log))
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw RuntimeError("the supervisor did not answer within 15 s; see \(p.log)", code: .timeout)
    }

    /// POST /v1/instances/NS/NAME/ACTION (start, stop, release).
    static func instanceAction(_ action: String, _ name: String, _ namespace: String?) async throws -> ObjectResult {
        let client = try await ensure()
        do { return try await client.send(.POST, "/v1/instances/\(namespace ?? "default")/\(name)/\(action)") } catch {
            throw error.asCommandError
        }
    }

    /// Whether a live supervisor holds the state directory's lock (the
    /// kernel drops a dead one's at once). Read from /proc/locks: taking the
    /// lock, even shared, to test it could make a starting supervisor fail.
    static func lockHeld(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, let locks = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return false }
        let inode = ":\(st.st_ino)"
        return locks.split(separator: "\n").contains { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            return f.count > 5 && f[1] == "FLOCK" && f[5].hasSuffix(inode)
        }
    }

    static func tail(_ path: String, lines: Int = 10) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}

extension ControlError {
    /// 400 and 422 are bad input (exit 2); the rest are failures (exit 1).
    var asCommandError: any Error {
        if status == 400 || status == 422 {
            printError("error: " + message)
            return CommandExit(code: ExitCode.badInput)
        }
        return RuntimeError(message)
    }
}

/// The namespace flags of kubectl: -n NS, -A for all.
struct NamespaceOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The namespace (default: default).")
    var namespace: String?

    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: "Every namespace.")
    var allNamespaces = false

    var effective: String { namespace ?? "default" }
    /// The query string for a listing.
    var query: String { allNamespaces ? "" : "namespace=" + effective }
}

import ArgumentParser
