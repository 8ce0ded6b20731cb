import Foundation
import Testing
import TestSupport
@testable import TargetRuntime

/// Issue 13 item 6: QEMU wrote guest memory, screenshots and memory backends
/// into the host's /tmp and /dev/shm, opened any world-readable file with
/// `blockdev-add` and streamed guest state into any host socket with
/// `migrate unix:`. In its own mount namespace, with empty tmpfs over those
/// trees, each attempt fails or lands in QEMU's private tmpfs: nothing
/// appears on the host. The same attempts through `--no-sandbox` show the
/// test would see an escape.
@Suite(.serialized) struct HostTreeEscapeTests {
    /// An x86 PC with a display device (for `screendump`), 64 MiB of RAM.
    static let spec = targetYAML("escape", """
        machine: pc
        memory: 64Mi
        drives: [{name: kernel, type: kernel, source: {configMap: {name: x86-pc-firmware}}}]
        devices: [{name: com1, type: serial}]
        extraArgs: [-device, VGA]
        """)

    struct Attempt {
        var lines: [String: String]
        var hostDir: String
        var stderr: String
    }

    /// Runs the QMP client against a fresh target; `hostDir` is world
    /// writable, as an attacker's target directory would be.
    func attempt(sandbox: Bool, asUser: Bool = false) throws -> Attempt {
        let work = "/tmp/vt-esc-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        chmod(work, 0o777)
        let host = work + "/host"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: false)
        chmod(host, 0o777)
        try "secret-host-name\n".write(toFile: host + "/hostname", atomically: false, encoding: .utf8)
        chmod(host + "/hostname", 0o644)
        let (r, results) = try runClient("qmp_host_escapes.py", argument: host, work: work, sandbox: sandbox, asUser: asUser)
        var lines: [String: String] = [:]
        for (key, value) in results
        where ["dump-tmp", "dump-host-dir", "screendump", "screendump-tmp", "memory-backend-file", "blockdev-add", "migrate-unix"].contains(key) {
            lines[key, default: ""] += value + "\n"
        }
        return Attempt(lines: lines, hostDir: host, stderr: r.stderr)
    }

    /// Runs a QMP client from `Clients/` against a fresh target in `work`
    /// (as nobody when `asUser`); the `key: value` lines it wrote to
    /// `work/results`, in order.
    func runClient(_ client: String, argument: String, work: String, sandbox: Bool, asUser: Bool) throws -> (RunResult, [(String, String)]) {
        let specPath = work + "/escape.yaml"
        try Self.spec.write(toFile: specPath, atomically: true, encoding: .utf8)
        chmod(specPath, 0o644)
        let runtime = work + "/rt"
        var args = ["run", "-f", specPath, "-f", firmware + "/x86-pc-firmware.yaml", "--allow-extra-args", "--timeout", "60s"]
        if !sandbox { args.append("--no-sandbox") }
        args += ["--", "/usr/bin/python3", repoRoot + "/Tests/IntegrationTests/Clients/" + client, argument]
        let r: RunResult
        if asUser {
            chown(work, 65534, 65534)
            r = try shell("setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin HOME=\(work) "
                          + "VTARGET_RUNTIME_DIR=\(runtime) XDG_CACHE_HOME=\(work)/cache \(vtarget) "
                          + args.map { "'\($0)'" }.joined(separator: " "), runtime: runtime)
        } else {
            r = try vt(args, runtime: runtime)
        }
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        let results = (try? String(contentsOfFile: work + "/results", encoding: .utf8)) ?? ""
        return (r, results.split(whereSeparator: \.isNewline).compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        })
    }

    /// What the attempts left on the host, by name.
    func leftovers(_ a: Attempt) -> [String] {
        let name = URL(fileURLWithPath: a.hostDir).deletingLastPathComponent().lastPathComponent
        var found = ((try? FileManager.default.contentsOfDirectory(atPath: a.hostDir)) ?? []).filter { $0 != "hostname" && $0 != "migrate.sock" }
        for p in ["/tmp/\(name)-dump", "/tmp/\(name)-shot.ppm", "/dev/shm/\(name)-mem"] where FileManager.default.fileExists(atPath: p) {
            found.append(p)
        }
        return found
    }

    func cleanUp(_ a: Attempt) {
        let name = URL(fileURLWithPath: a.hostDir).deletingLastPathComponent().lastPathComponent
        for p in ["/tmp/\(name)-dump", "/tmp/\(name)-shot.ppm", "/dev/shm/\(name)-mem"] { unlink(p) }
        try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: a.hostDir).deletingLastPathComponent().path)
    }

    func expectConfined(_ a: Attempt) {
        #expect(a.lines.count == 7, "every attempt reported: \(a.lines) \(a.stderr)")
        #expect(leftovers(a).isEmpty, "QEMU wrote onto the host: \(leftovers(a))")
        // The host file and socket do not exist in QEMU's view.
        #expect(a.lines["blockdev-add"]?.hasPrefix("error") == true, "\(a.lines)")
        #expect(a.lines["dump-host-dir"]?.hasPrefix("error") == true, "\(a.lines)")
        #expect(a.lines["screendump"]?.hasPrefix("error") == true, "\(a.lines)")
        #expect(a.lines["migrate-unix"]?.contains("not connected") == true, "\(a.lines)")
    }

    @Test(.enabled(if: getuid() == 0)) func sandboxedQEMUReachesNoHostTree() throws {
        let a = try attempt(sandbox: true)
        defer { cleanUp(a) }
        expectConfined(a)
    }

    /// As an ordinary user QEMU runs as that user, who may write the world
    /// writable directory: only the mount namespace stops it.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func sandboxedQEMUOfAnOrdinaryUserReachesNoHostTree() throws {
        let a = try attempt(sandbox: true, asUser: true)
        defer { cleanUp(a) }
        expectConfined(a)
        // A user's QEMU never had capabilities: nothing to warn of.
        let warning = a.stderr.split(separator: "\n").first { $0.contains("sandbox: not available here") } ?? ""
        #expect(!warning.contains("capabilit"), "\(a.stderr)")
    }

    /// A program (QEMU in ~/.local/bin, a test's stand-in in /tmp) whose
    /// path a tmpfs covers still starts: the shim opens it before mounting
    /// and execs the fd. Inside, /tmp is empty.
    @Test(.enabled(if: getuid() == 0)) func programsInHiddenTreesStillStart() throws {
        let dir = "/tmp/vt-exec-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        chmod(dir, 0o755)
        try "#!/bin/sh\necho \"tmp has $(ls -A /tmp | wc -l) entries\"\n".write(toFile: dir + "/script", atomically: false, encoding: .utf8)
        chmod(dir + "/script", 0o755)
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: dir + "/true")
        let runtime = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let script = try vt(["sandbox-exec", "--", dir + "/script"], runtime: runtime)
        #expect(script.code == 0 && script.stdout == "tmp has 0 entries\n", "\(script.stdout) \(script.stderr)")
        let binary = try vt(["sandbox-exec", "--", dir + "/true"], runtime: runtime)
        #expect(binary.code == 0, "\(binary.stderr)")
    }

    /// As an ordinary user (a user namespace makes the mounts possible),
    /// `doctor` finds, from the mount table and /proc a child spawned as
    /// QEMU sees, its minimal root, host files absent, scratch trees its
    /// own and no other process; and says when sidecars get no cgroup.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func doctorAsAnOrdinaryUserVerifiesTheHiddenTrees() throws {
        let home = "/tmp/vt-doc-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: home) }
        chown(home, 65534, 65534)
        let r = try shell("setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin HOME=\(home) "
                          + "VTARGET_RUNTIME_DIR=\(home)/rt \(vtarget) doctor", runtime: home + "/rt")
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("user namespace: its own"), "\(r.stdout)")
        for tree in ["/tmp", "/var/tmp", "/dev/shm"] {
            #expect(r.stdout.contains("  \(tree): a private empty tmpfs (16 MiB scratch)"), "\(tree): \(r.stdout)")
        }
        #expect(r.stdout.contains("  root: a private tmpfs"), "\(r.stdout)")
        for path in ["/etc/shadow", "/etc/hostname", "/home", "/root", "/run"] {
            #expect(r.stdout.contains("  \(path): absent"), "\(path): \(r.stdout)")
        }
        #expect(r.stdout.contains("  /proc: its own, no other process visible"), "\(r.stdout)")
        let capabilities = r.stdout.split(separator: "\n").first { $0.hasPrefix("no capabilities") } ?? ""
        #expect(capabilities.contains(" yes ") && capabilities.contains("never had any (not root)"), "\(r.stdout)")
        let sidecars = r.stdout.split(separator: "\n").first { $0.hasPrefix("sidecar cgroups") } ?? ""
        // Without a writable cgroup v2 group (nobody, no delegation) the fallback is said.
        #expect(sidecars.contains(" yes ") || sidecars.contains("sidecars end with their process group only"), "\(sidecars)")
    }

    /// Runs the host-files client (read-only `blockdev-add` of /etc/hostname,
    /// /etc/passwd and the client's own /proc/PID/cmdline) against a fresh
    /// target; its lines by name.
    func hostFileAttempts(sandbox: Bool, asUser: Bool = false) throws -> [String: String] {
        let work = "/tmp/vt-files-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: work) }
        chmod(work, 0o777)
        let (_, results) = try runClient("qmp_host_files.py", argument: work + "/results", work: work, sandbox: sandbox, asUser: asUser)
        return Dictionary(results, uniquingKeysWith: { _, last in last })
    }

    /// Issue 13's last gap: QEMU's root is a minimal one, so host files
    /// readable by anyone (`/etc/hostname`, `/etc/passwd`) do not exist for
    /// it, and its /proc is its own pid namespace's: a host process's
    /// /proc/PID is not there.
    @Test(.enabled(if: getuid() == 0)) func sandboxedQEMUCannotNameHostFilesOrProcesses() throws {
        let lines = try hostFileAttempts(sandbox: true)
        #expect(lines.count == 3, "\(lines)")
        for name in ["etc-hostname", "etc-passwd", "host-pid"] {
            #expect(lines[name]?.contains("No such file or directory") == true, "\(name): \(lines)")
        }
    }

    /// The same as an ordinary user, whose QEMU builds its root in a user namespace.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func sandboxedQEMUOfAnOrdinaryUserCannotNameHostFilesOrProcesses() throws {
        let lines = try hostFileAttempts(sandbox: true, asUser: true)
        #expect(lines.count == 3, "\(lines)")
        for name in ["etc-hostname", "etc-passwd", "host-pid"] {
            #expect(lines[name]?.contains("No such file or directory") == true, "\(name): \(lines)")
        }
    }

    /// The control: unconfined QEMU opens each.
    @Test(.enabled(if: getuid() == 0)) func unconfinedQEMUNamesHostFilesAndProcesses() throws {
        let lines = try hostFileAttempts(sandbox: false)
        for name in ["etc-hostname", "etc-passwd", "host-pid"] {
            #expect(lines[name] == "ok", "\(name): \(lines)")
        }
    }

    /// The control: unconfined, the same attempts do reach the host, so the
    /// test above would see them.
    @Test(.enabled(if: getuid() == 0)) func unconfinedQEMUDoesReachTheHost() throws {
        let a = try attempt(sandbox: false)
        defer { cleanUp(a) }
        #expect(a.lines["blockdev-add"] == "ok\n", "\(a.lines) \(a.stderr)")
        #expect(a.lines["migrate-unix"]?.contains("not connected") == false, "\(a.lines)")
        let left = Set(leftovers(a).map { URL(fileURLWithPath: $0).lastPathComponent })
        let name = URL(fileURLWithPath: a.hostDir).deletingLastPathComponent().lastPathComponent
        for file in ["shot.ppm", "dump", "\(name)-dump", "\(name)-shot.ppm", "\(name)-mem"] {
            #expect(left.contains(file), "\(file) not written: \(left)")
        }
    }
}
