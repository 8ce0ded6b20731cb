import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Sandbox
import HostOS
import TargetRuntime
import Sandbox

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Show which sandbox protections QEMU gets on this machine, verified, and why others are missing.",
        discussion: "The verification runs vtarget-sandbox-probe (built beside vtarget) through the same spawn path as QEMU.")

    func run() async throws {
        let rows = await QEMUSandbox.protections(enabled: true)
        printOut(Table.render([["PROTECTION", "ACTIVE", "DETAIL"]] + rows.map { [$0.name, $0.active ? "yes" : "no", $0.why] }))
        guard let probe = SandboxExec.probePath() else {
            printOut("\nverification skipped: vtarget-sandbox-probe is not beside \(Environment.executable)")
            return
        }
        let policy = try await QEMUSandbox.policy(enabled: true)
        let r = try await ProcessCapture.run(deadline: 30) { w in
            SpawnRequest(executable: probe, arguments: [], environment: SandboxExec.environment,
                         workingDirectory: "/", fds: [-1, w, 2], sandbox: policy)
        }
        let (code, output) = (r.status.shellCode, r.output)
        let lines = output.split(separator: "\n").map(String.init)
        let calls = lines.filter { $0.hasPrefix("syscall ") }
        let refused = calls.filter { $0.hasSuffix(" EPERM") }
        printOut("\nverified by running \(probe) through the sandbox (exit \(code)):")
        printOut("  \(refused.count) of \(calls.count) denied system calls got EPERM")
        for l in calls where !l.hasSuffix(" EPERM") { printOut("  NOT refused: " + l.dropFirst("syscall ".count)) }
        for l in lines where l.hasPrefix("status ") || l.hasPrefix("socket inet") { printOut("  " + l.replacingTabs) }
        // Each namespace the probe is in, against the doctor's own (read from /proc on both sides).
        for l in lines where l.hasPrefix("ns ") {
            let parts = l.split(separator: " ")
            guard parts.count == 3 else { continue }
            let kind = String(parts[1])
            var buf = [CChar](repeating: 0, count: 128)
            let n = readlink("/proc/self/ns/" + kind, &buf, buf.count - 1)
            let mine = n > 0 ? String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
            printOut("  \(kind) namespace: " + (String(parts[2]) != mine ? "its own (\(parts[2]))" : "shared with the host"))
        }
        let hidden = try await verifyHiddenTrees(policy)
        let minimal = verifyMinimalRoot(policy, probeLines: lines)
        if refused.count != calls.count || !hidden || !minimal { throw CommandExit(code: 1) }
    }

    /// From the probe's own view (its mountinfo, access(2) and /proc): its
    /// root is a private tmpfs, the host's files are absent and its /proc
    /// shows no process but its own. False when one is not so.
    private func verifyMinimalRoot(_ policy: SandboxPolicy, probeLines lines: [String]) -> Bool {
        guard policy.namespaces, policy.minimalRoot != nil else {
            printOut("  root: the host's (no mount namespace here; see above)")
            return true
        }
        var ok = true
        let root = lines.first { $0.hasPrefix("root ") }.map { String($0.dropFirst(5)) } ?? "unknown"
        ok = ok && root == "tmpfs"
        printOut("  root: " + (root == "tmpfs" ? "a private tmpfs (only QEMU's directory, /usr, the loader's cache and device nodes bound in)"
                                               : "NOT minimal (\(root))"))
        for l in lines where l.hasPrefix("path ") {
            let parts = l.split(separator: " ")
            guard parts.count == 3, parts[1] != "/usr/bin" else { continue }
            ok = ok && parts[2] == "absent"
            printOut("  \(parts[1]): " + (parts[2] == "absent" ? "absent" : "VISIBLE"))
        }
        // "proc mounted pids N others M self S"
        let proc = lines.first { $0.hasPrefix("proc mounted") || $0.hasPrefix("proc absent") }?.split(separator: " ").map(String.init) ?? []
        if proc.count >= 6, proc[1] == "mounted" {
            let own = proc[5] == "0"
            ok = ok && own
            printOut("  /proc: " + (own ? "its own, no other process visible" : "shows \(proc[5]) other processes"))
        } else {
            printOut("  /proc: none (this kernel mounts no proc here; QEMU runs without one)")
        }
        return ok
    }

    /// Reads the mount table a child spawned as QEMU sees (its own
    /// /proc/self/mountinfo): each host tree the policy hides must be a
    /// tmpfs mount point there. False when one is not.
    private func verifyHiddenTrees(_ policy: SandboxPolicy) async throws -> Bool {
        guard !policy.privateMounts.isEmpty else {
            printOut("  host scratch trees: visible to QEMU (no mount namespace here; see above)")
            return true
        }
        let r = try await ProcessCapture.run(deadline: 30) { w in
            SpawnRequest(executable: "/bin/cat", arguments: ["/proc/self/mountinfo"], environment: SandboxExec.environment,
                         workingDirectory: "/", fds: [-1, w, 2], sandbox: policy)
        }
        // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER; the last mount on a point is the one seen.
        var seen: [String: String] = [:]
        for line in r.output.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count > 5, let dash = f.firstIndex(of: "-"), dash + 1 < f.count else { continue }
            seen[String(f[4])] = String(f[dash + 1]) + " " + String(f[5])
        }
        var ok = true
        for m in policy.privateMounts where access(m.path, F_OK) == 0 && m.path != "/dev" {
            let what = seen[m.path] ?? "the host's"
            let hidden = what.hasPrefix("tmpfs ") && what.hasPrefix("tmpfs ro,") == m.readOnly
            ok = ok && hidden
            printOut("  \(m.path): " + (hidden ? "a private empty tmpfs (\(m.readOnly ? "read-only" : "16 MiB scratch"))" : "NOT hidden (\(what))"))
        }
        return ok
    }
}

/// `vtarget sandbox-exec -- PROGRAM ARGS`: any program through QEMU's spawn
/// path and policy; how the tests show the sandbox really confines.
struct SandboxExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox-exec",
        abstract: "Run a program under the sandbox QEMU gets (for checking it).",
        shouldDisplay: false)

    @Flag(name: .customLong("no-sandbox"), help: "The same spawn path with no confinement, for comparison.")
    var noSandbox = false

    @Argument(parsing: .postTerminator) var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("give a program after --") }
    }

    func run() async throws {
        let child = try await SandboxExec.spawn(command, sandbox: !noSandbox, stdout: 1)
        let status = await child.waitForExit()
        if status != .exited(0) { throw CommandExit(code: status.shellCode) }
    }
}

enum SandboxExec {
    static func probePath() -> String? {
        let exe = Environment.executable
        guard let slash = exe.lastIndex(of: "/") else { return nil }
        let p = String(exe[..<slash]) + "/vtarget-sandbox-probe"
        return access(p, X_OK) == 0 ? p : nil
    }

    /// The environment QEMU gets: nothing of the caller's.
    static let environment = ["PATH=/usr/bin:/bin", "LC_ALL=C"]

    static func spawn(_ command: [String], sandbox: Bool, stdout: Int32) async throws -> ChildProcess {
        guard let exe = ExecutableSearch.find(command[0], environment: Environment.variables) else {
            throw RuntimeError("command not found: \(command[0])", code: .notFound)
        }
        return try await ChildProcess.spawn(SpawnRequest(
            executable: exe, arguments: Array(command.dropFirst()), environment: environment,
            workingDirectory: "/", fds: [-1, stdout, 2], sandbox: try await QEMUSandbox.policy(enabled: sandbox)))
    }
}

extension String {
    var replacingTabs: String { String(map { $0 == "\t" ? " " : $0 }) }
}
