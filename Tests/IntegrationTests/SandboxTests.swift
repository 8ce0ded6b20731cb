import Foundation
import MachineCatalog
import NIOPosix
import QEMULaunch
import Sandbox
import TargetSpec
import TestSupport
import HostOS
import Testing
@testable import TargetRuntime

let probe = repoRoot + "/.build/debug/vtarget-sandbox-probe"
let isRoot = geteuid() == 0

func statusFields(_ pid: Int32) -> [String: String] {
    let text = String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/status") ?? Data(), as: UTF8.self)
    var out: [String: String] = [:]
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: ":", maxSplits: 1)
        if parts.count == 2 { out[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
    }
    return out
}

@Suite(.serialized) struct SandboxTests {
    /// The probe tries every denied call: confined, each gets EPERM; through
    /// the same path unconfined, they fail for ordinary reasons or work.
    @Test func deniedCallsGetEPERMOnlyInsideTheSandbox() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let confined = try vt(["sandbox-exec", "--", probe], runtime: runtime)
        #expect(confined.code == 0, "\(confined.stderr)")
        let calls = confined.stdout.split(separator: "\n").filter { $0.hasPrefix("syscall ") }
        #expect(calls.count == 29)
        #expect(calls.allSatisfy { $0.hasSuffix(" EPERM") }, "\(calls.filter { !$0.hasSuffix(" EPERM") })")
        #expect(confined.stdout.contains("socket inet EAFNOSUPPORT"))
        #expect(confined.stdout.contains("socket unix ok"), "allowed calls still work")
        #expect(confined.stdout.contains("open /dev/null ok"))
        #expect(confined.stdout.contains("status NoNewPrivs:\t1"))
        #expect(confined.stdout.contains("status Seccomp:\t2"))

        let open = try vt(["sandbox-exec", "--no-sandbox", "--", probe], runtime: runtime)
        #expect(open.code == 0)
        #expect(open.stdout.contains("syscall unshare ok"))
        #expect(open.stdout.contains("syscall process_vm_readv ok"))
        #expect(open.stdout.contains("socket inet ok"))
        if isRoot {
            let eperm = open.stdout.split(separator: "\n").filter { $0.hasPrefix("syscall ") && $0.hasSuffix(" EPERM") }
            #expect(eperm.isEmpty, "as root, nothing is EPERM without the sandbox: \(eperm)")
        }
    }

    /// What a child spawned as QEMU sees: a tmpfs root without the host's
    /// files, and a /proc of its own pid namespace, where it is pid 1 and
    /// alone. Unconfined, the same probe sees the host's tree and processes.
    @Test func theChildSeesAMinimalRootAndItsOwnProc() async throws {
        guard await QEMUSandbox.namespacesWork() else { return }
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let confined = try vt(["sandbox-exec", "--", probe], runtime: runtime)
        #expect(confined.code == 0, "\(confined.stderr)")
        let lines = Set(confined.stdout.split(separator: "\n").map(String.init))
        #expect(lines.contains("root tmpfs"), "\(confined.stdout)")
        for path in ["/etc/shadow", "/etc/passwd", "/etc/hostname", "/home", "/root", "/run", "/var/lib", "/sys"] {
            #expect(lines.contains("path \(path) absent"), "\(path): \(confined.stdout)")
        }
        #expect(lines.contains("path /usr/bin present"))
        #expect(lines.contains("proc mounted pids 1 others 0 self 1"), "\(confined.stdout)")
        #expect(lines.contains("proc 1 cmdline \(probe)"), "/proc/1 is the probe itself: \(confined.stdout)")
        #expect(confined.stdout.contains("open /dev/null ok"))

        let open = try vt(["sandbox-exec", "--no-sandbox", "--", probe], runtime: runtime)
        let hostLines = Set(open.stdout.split(separator: "\n").map(String.init))
        #expect(hostLines.contains("path /etc/passwd present"), "\(open.stdout)")
        #expect(!hostLines.contains("root tmpfs"))
        let others = hostLines.first { $0.hasPrefix("proc mounted") }?.split(separator: " ").dropFirst(5).first.flatMap { Int($0) } ?? 0
        #expect(others > 1, "the host's processes are visible unconfined: \(open.stdout)")
    }

    /// What goes into QEMU's root follows its plan: /dev/kvm only for a
    /// kvm accelerator, the resolver's file only for a user-mode network,
    /// never the rest of /etc; a QEMU outside /usr brings its prefix.
    @Test func theMinimalRootFollowsThePlan() throws {
        func paths(_ r: SandboxPolicy.MinimalRoot) -> Set<String> { Set(r.binds.map(\.path)) }
        let board = QEMUSandbox.minimalRoot(ownDirectory: true, hostNetwork: false, accel: "tcg", qemuPath: "/usr/bin/qemu-system-arm")
        let tops = Set(board.binds.map(\.path).filter { ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"].contains($0) })
        let expected: Set<String> = ["/usr", "/etc/ld.so.cache", "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]
        #expect(paths(board) == expected.union(tops))
        #expect(board.bindWorkingDirectory)
        let writable = board.binds.filter { !$0.readOnly }.map(\.path)
        #expect(writable.allSatisfy { $0.hasPrefix("/dev/") }, "only device nodes are writable: \(writable)")
        #expect(board.symlinks.contains { $0.link == "/dev/fd" && $0.target == "/proc/self/fd" })
        let vm = QEMUSandbox.minimalRoot(ownDirectory: true, hostNetwork: true, accel: "kvm", qemuPath: "/usr/bin/qemu-system-x86_64")
        #expect(paths(vm).isSuperset(of: ["/dev/kvm", "/etc/resolv.conf"]))
        #expect(!paths(vm).contains { $0.hasPrefix("/etc/") && $0 != "/etc/ld.so.cache" && $0 != "/etc/resolv.conf" })
        let unknown = QEMUSandbox.minimalRoot(ownDirectory: false, hostNetwork: false, accel: nil, qemuPath: nil)
        #expect(paths(unknown).contains("/dev/kvm") && !unknown.bindWorkingDirectory)

        let prefix = "/tmp/vt-prefix-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: prefix) }
        try FileManager.default.createDirectory(atPath: prefix + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: prefix + "/share/qemu", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: prefix + "/bin/qemu-system-arm", contents: Data())
        #expect(QEMUSandbox.installPrefix(prefix + "/bin/qemu-system-arm") == prefix)
        #expect(QEMUSandbox.installPrefix("/usr/bin/qemu-system-arm") == nil)
        try FileManager.default.removeItem(atPath: prefix + "/share/qemu")
        #expect(QEMUSandbox.installPrefix(prefix + "/bin/qemu-system-arm") == nil, "a directory without QEMU's data is not bound")
    }

    @Test func asRootTheChildHasNoPrivileges() throws {
        guard isRoot else { return }
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let r = try vt(["sandbox-exec", "--", probe], runtime: runtime)
        #expect(r.stdout.contains("status Uid:\t65534\t65534\t65534\t65534"))
        #expect(r.stdout.contains("status CapEff:\t0000000000000000"))
    }

    /// A secret in vtarget's environment and an fd it inherited without
    /// close-on-exec never reach QEMU; QEMU is confined as the probe was.
    @Test func qemuIsConfinedAndInheritsNothing() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let script = """
            exec 7</dev/null
            export VTARGET_TEST_SECRET=hunter2
            exec "$0" run -f examples/lm3s6965evb.yaml -f \(firmware)/lm3s6965evb-firmware.yaml --timeout 20s -- sh -c '
              for p in $(pgrep -f "^/usr/bin/qemu-system-arm -name lm3s6965evb"); do
                readlink /proc/$p/cwd | grep -q "\(runtime)" || continue
                echo "pid $p"
                grep -E "^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/$p/status
                for n in pid ipc uts; do echo "ns$n $(readlink /proc/$p/ns/$n) mine $(readlink /proc/self/ns/$n)"; done
                echo "fds $(ls /proc/$p/fd | tr "\\n" " ")"
                echo "fd7 $(readlink /proc/$p/fd/7)"
                tr "\\0" "\\n" < /proc/$p/environ | sed "s/^/env /"
                echo "netns $(readlink /proc/$p/ns/net) mine $(readlink /proc/self/ns/net)"
              done'
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script, vtarget]
        p.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
        var env = ProcessInfo.processInfo.environment
        env["VTARGET_RUNTIME_DIR"] = runtime
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(text.contains("pid "), "QEMU not found: \(text)")
        #expect(text.contains("NoNewPrivs:\t1"))
        #expect(text.contains("Seccomp:\t2"))
        #expect(!text.contains("hunter2"), "the secret reached QEMU")
        #expect(text.contains("env PATH=/usr/bin:/bin"))
        #expect(!text.contains("fd7 /dev/null"), "an inherited fd reached QEMU")
        if isRoot {
            // A uid of its own (no longer the nobody every QEMU shared), all four the same.
            let uid = text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst().compactMap { UInt32($0) } ?? []
            #expect(uid.count == 4 && Set(uid).count == 1 && uid[0] >= QEMUIdentity.base, "\(uid)")
            #expect(text.contains("CapEff:\t0000000000000000"))
            let ns = text.split(separator: "\n").first { $0.hasPrefix("netns ") }?.split(separator: " ")
            #expect(ns != nil && ns![1] != ns![3], "QEMU has its own network namespace: \(ns ?? [])")
            // Its own pid, ipc and uts namespaces (no other process to see or signal), and no capability it could ever regain.
            for kind in ["pid", "ipc", "uts"] {
                let n = text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("ns\(kind) ") }?.split(separator: " ")
                #expect(n != nil && n!.count == 4 && n![1] != n![3], "QEMU has its own \(kind) namespace: \(n ?? [])")
            }
            #expect(text.contains("CapBnd:\t0000000000000000"), "the bounding set is empty")
        }
    }

    /// An ordinary user gets private user, network and mount namespaces where
    /// the kernel allows unprivileged user namespaces (this one does; if it
    /// did not, the run would say so and go on).
    @Test func asAnOrdinaryUserQEMUGetsItsOwnNamespaces() throws {
        guard isRoot, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return }
        let home = "/tmp/vt-user-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: false)
        chown(home, 65534, 65534)
        chmod(home, 0o700)
        defer { try? FileManager.default.removeItem(atPath: home) }
        let script = """
            P=$(pgrep -f "^/usr/bin/qemu-system-arm -name lm3s6965evb" | while read p; do readlink /proc/$p/cwd | grep -q "\(home)" && echo $p; done | head -1)
            grep -E "^(Uid|CapEff|NoNewPrivs|Seccomp):" /proc/$P/status
            echo "net $(readlink /proc/$P/ns/net) $(readlink /proc/self/ns/net)"
            echo "user $(readlink /proc/$P/ns/user) $(readlink /proc/self/ns/user)"
            """
        let r = try shell("""
            setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin HOME=\(home) \
              VTARGET_RUNTIME_DIR=\(home)/rt XDG_CACHE_HOME=\(home)/cache \
              \(vtarget) run -f examples/lm3s6965evb.yaml -f \(firmware)/lm3s6965evb-firmware.yaml --timeout 30s -- sh -c '\(script)'
            """, runtime: home + "/rt")
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Uid:\t65534\t65534\t65534\t65534"))
        #expect(r.stdout.contains("CapEff:\t0000000000000000"))
        #expect(r.stdout.contains("Seccomp:\t2"))
        for ns in ["net", "user"] {
            let parts = r.stdout.split(separator: "\n").first { $0.hasPrefix(ns + " ") }?.split(separator: " ") ?? []
            #expect(parts.count == 3 && parts[1] != parts[2], "QEMU shares the \(ns) namespace: \(r.stdout)")
        }
        #expect(!r.stderr.contains("network namespace"), "no namespace should be reported missing: \(r.stderr)")
    }

    /// Where cgroups are writable, QEMU runs inside limits from its spec
    /// (guest RAM + 512 MiB, one core per vCPU and one for QEMU's own
    /// threads), and the group goes with it.
    @Test func cgroupLimitsFollowTheSpec() throws {
        guard CgroupLimits.availability().0 else { return }
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let script = """
            for p in $(pgrep -f "^/usr/bin/qemu-system-x86_64 -name x86-pc"); do
              readlink /proc/$p/cwd | grep -q "\(runtime)" || continue
              for c in $(cut -d: -f3 /proc/$p/cgroup | grep vtarget-); do
                echo "group $c"
                for f in memory.limit_in_bytes memory.max cpu.cfs_quota_us cpu.max; do
                  for root in /sys/fs/cgroup /sys/fs/cgroup/memory /sys/fs/cgroup/cpu; do
                    test -f $root$c/$f && echo "$f $(cat $root$c/$f)"
                  done
                done
              done
            done
            true
            """
        let r = try vt(["run"] + exampleArgs("x86-pc") + ["--timeout", "30s", "--", "sh", "-c", script], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        let memory = r.stdout.contains("memory.limit_in_bytes \(UInt64(576) << 20)") || r.stdout.contains("memory.max \(UInt64(576) << 20)")
        #expect(memory, "64Mi guest + 512Mi: \(r.stdout)")
        #expect(r.stdout.contains("cpu.cfs_quota_us 200000") || r.stdout.contains("cpu.max 200000 100000"), "1 vCPU + 1: \(r.stdout)")
        // This run's own groups are gone (other tests may have theirs meanwhile).
        let groups = Set(r.stdout.split(separator: "\n").filter { $0.hasPrefix("group ") }.map { String($0.dropFirst(6)) })
        #expect(!groups.isEmpty)
        for g in groups {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu"] {
                #expect(!FileManager.default.fileExists(atPath: root + g), "cgroup left: \(root + g)")
            }
        }
    }

    /// Boards without a sample still start under the full sandbox and answer
    /// QMP: each profile's QEMU is spawned as a run would, and queried paused.
    @Test func everyProfileReachesQMPUnderTheSandbox() async throws {
        let catalog = try builtInCatalog()
        #expect(catalog.profiles.count == 16)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runtime = makeRuntimeDir()
        chmod(runtime, 0o711)
        for profile in catalog.profiles {
            let text = """
                apiVersion: qemu.kubetarget.dev/v1alpha1
                kind: QemuVirtualTarget
                metadata: {name: probe-\(profile.name)}
                spec:
                  architecture: \(profile.architecture.rawValue)
                  qemuConfig:
                    machine: \(profile.name)
                    devices: [{name: uart0, type: serial}]
                """
            let decoded = try ResourceDecoder(catalog: catalog).decode([SourceFile(path: "p.yaml", directory: "/", bytes: Array(text.utf8))])
            guard case .target(let t) = decoded.resources[0] else { continue }
            let instance = runtime + "/\(profile.name)"
            mkdir(instance, 0o711)
            mkdir(instance + "/qemu", 0o700)
            try QEMUSandbox.handOver(instance + "/qemu")
            let plan = try LaunchPlanner(host: HostFacts()).plan(t, profile: profile, drives: [], instanceDirectory: instance + "/qemu")
            let qemu = try #require(ExecutableSearch.find(plan.binary, environment: ProcessInfo.processInfo.environment))
            let target = try await TargetProcess.spawn(plan: plan, directory: instance, qemuPath: qemu, sandbox: try await QEMUSandbox.policy(enabled: true, qemuDirectory: instance + "/qemu"))
            do {
                try await target.connect(group: group, startRunning: false, environment: ProcessInfo.processInfo.environment) { _, _ in }
                let status = try await target.qmp!.execute("query-status")
                #expect(status["status"]?.stringValue == "prelaunch", "\(profile.name)")
                let fields = statusFields(target.child.pid)
                #expect(fields["Seccomp"] == "2", "\(profile.name)")
                #expect(fields["NoNewPrivs"] == "1", "\(profile.name)")
            } catch {
                Issue.record("\(profile.name): \(error)\n\(target.stderrText)")
            }
            _ = await target.stop()
        }
        try await group.shutdownGracefully()
        RuntimeDirectory.removeTree(runtime)
    }

    /// A -blockdev path with `,`, `=`, spaces, quotes and a
    /// newline reaches QEMU intact, and the guest boots with the disk attached.
    @Test func hostilePathsBoot() throws {
        let base = "/tmp/vt-h-\(UInt32.random(in: 0...UInt32.max))"
        let hostile = base + "/a,b=c d'q\"\nx"
        try FileManager.default.createDirectory(atPath: hostile, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: hostile + "/disk,1.img"))
        chmod(base, 0o755); chmod(hostile, 0o755); chmod(hostile + "/disk,1.img", 0o644)
        let yaml = """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: x86-pc}
            spec:
              qemuConfig:
                machine: pc
                drives:
                  - {name: kernel, type: kernel, source: {configMap: {name: x86-pc-firmware}}}
                  - {name: data, type: disk, format: raw, source: {hostPath: {path: "\(hostile.replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n"))/disk,1.img"}}}
                devices: [{name: com1, type: serial}]
            """
        try yaml.write(toFile: base + "/t.yaml", atomically: true, encoding: .utf8)
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let r = try vt(["run", "-f", base + "/t.yaml", "-f", "\(firmware)/x86-pc-firmware.yaml", "--allow-host-paths",
                        "--until", "echo ready", "--timeout", "30s"], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        let rendered = try vt(["render", "-f", base + "/t.yaml", "-f", "\(firmware)/x86-pc-firmware.yaml", "--allow-host-paths", "--no-sandbox"], runtime: runtime)
        // -blockdev is JSON: the path is JSON-escaped and its commas stay single.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let filename = String(decoding: try encoder.encode(hostile + "/disk,1.img"), as: UTF8.self)
        #expect(rendered.stdout.contains(#"{"driver":"file","filename":"# + filename + #","node-name":"file-data"}"#), "\(rendered.stdout)")
        if isRoot {
            // As root the disk reaches QEMU (uid 65534) as an fd vtarget opened.
            let asRun = try vt(["render", "-f", base + "/t.yaml", "-f", "\(firmware)/x86-pc-firmware.yaml", "--allow-host-paths"], runtime: runtime)
            #expect(asRun.stdout.contains("-add-fd\nfd=4,set=1\n-add-fd\nfd=5,set=1\n"), "\(asRun.stdout)")
            #expect(asRun.stdout.contains(#""filename":"/dev/fdset/1""#))
        }
    }

    @Test func socketPathTooLongFailsBeforeAnythingStarts() throws {
        let long = "/tmp/vt-" + String(repeating: "x", count: 90)
        try? FileManager.default.createDirectory(atPath: long, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: long) }
        let r = try vt(["run"] + exampleArgs("lm3s6965evb") + ["--timeout", "5s"], runtime: long)
        #expect(r.code == 1)
        #expect(r.stderr.contains("unix sockets allow 107"), "\(r.stderr)")
        #expect(qemuProcesses(mentioning: long).isEmpty)
        expectNothingLeft(long)
    }

    @Test func cleanupNeverFollowsSymlinksOut() throws {
        let outside = "/tmp/vt-outside-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: outside + "/precious"))
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let runtime = makeRuntimeDir()
        try FileManager.default.createDirectory(atPath: runtime + "/inst", withIntermediateDirectories: true)
        symlink(outside, runtime + "/inst/escape")
        symlink(outside + "/precious", runtime + "/inst/file-escape")
        RuntimeDirectory.removeTree(runtime)
        #expect(!FileManager.default.fileExists(atPath: runtime))
        #expect(FileManager.default.fileExists(atPath: outside + "/precious"))
    }

    /// SIGKILL of `vtarget run` itself: every QEMU dies with it, within 2 s.
    @Test func killingRunLeavesNoQEMU() throws {
        let yaml = nodeTargetYAML(instances: (1...5).map { "node-\($0)" })
        let file = "/tmp/vt-five-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let runtime = makeRuntimeDir()
        let (p, out, _) = try launch(["run", "-f", file, "-f", "\(firmware)/lm3s6965evb-firmware.yaml"], runtime: runtime)
        var seen = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, seen.components(separatedBy: "echo ready").count < 6 {
            seen += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        }
        #expect(qemuProcesses(mentioning: runtime).count == 5)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let killedAt = Date()
        while Date().timeIntervalSince(killedAt) < 2, !qemuProcesses(mentioning: runtime).isEmpty { usleep(20_000) }
        #expect(qemuProcesses(mentioning: runtime).isEmpty, "QEMU survived its vtarget by 2 s")
        // A SIGKILLed vtarget cannot clean up; the next run of the same pid would.
        RuntimeDirectory.removeTree(runtime)
    }
}
