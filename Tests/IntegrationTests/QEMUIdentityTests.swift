import Foundation
import Testing
import HostOS
import TargetRuntime
import TestSupport

/// uid leases: two live instances never share a QEMU uid, and a lease ends
/// with its holder.
@Suite struct QEMUIdentityTests {
    @Test func leasesAreExclusiveAndEndWithTheirHolder() throws {
        let dir = "/tmp/vt-ids-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try QEMUIdentityLease.acquire(directory: dir, base: 5000, count: 2)
        let b = try QEMUIdentityLease.acquire(directory: dir, base: 5000, count: 2)
        #expect(a.identity != b.identity)
        #expect(Set([a.identity.uid, b.identity.uid]) == [5000, 5001])
        #expect(a.identity.gid == a.identity.uid)
        #expect(throws: RuntimeError.self) { try QEMUIdentityLease.acquire(directory: dir, base: 5000, count: 2) }
        let freed = a.identity
        a.close()
        let c = try QEMUIdentityLease.acquire(directory: dir, base: 5000, count: 2)
        #expect(c.identity == freed)
        // Another process sees the lease too (flock is per open file, kernel-wide).
        let r = try shell("flock -n \(dir)/\(b.identity.uid) true; echo $?", runtime: dir)
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "\(r.stdout)")
        b.close()
        c.close()
    }
}

/// The attacks that worked while every QEMU ran as nobody: another process
/// of that uid (or another instance's QEMU) could signal QEMU, take its fds
/// and write into its UART FIFO. With a uid per instance, none of it works.
@Suite(.serialized) struct QEMUIsolationTests {
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func instancesCannotReachEachOther() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let work = "/tmp/vt-iso-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let spec = work + "/pair.yaml"
        try nodeTargetYAML(instances: ["node-a", "node-b"]).write(toFile: spec, atomically: true, encoding: .utf8)
        // From inside the run: both QEMUs' uids, then each attack as the other instance's uid and as nobody.
        let script = #"""
            set -u
            pa=""; pb=""
            for p in $(pgrep -f "qemu-system-arm"); do
              readlink /proc/$p/cwd | grep -q "RUNTIME" || continue
              grep -qa -- "-name.node-a" /proc/$p/cmdline && pa=$p
              grep -qa -- "-name.node-b" /proc/$p/cmdline && pb=$p
            done
            ua=$(awk '/^Uid:/{print $2}' /proc/$pa/status); ub=$(awk '/^Uid:/{print $2}' /proc/$pb/status)
            echo "uids $ua $ub"
            fifo=$(ls -d RUNTIME/run-*/node-a/qemu/serial-uart0.in | head -1)
            for who in $ub 65534; do
              setpriv --reuid=$who --regid=$who --clear-groups kill -0 $pa 2>/dev/null && echo "kill as $who: allowed" || echo "kill as $who: denied"
              setpriv --reuid=$who --regid=$who --clear-groups sh -c "printf x > '$fifo'" 2>/dev/null && echo "fifo as $who: allowed" || echo "fifo as $who: denied"
              setpriv --reuid=$who --regid=$who --clear-groups /usr/bin/python3 -c "
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.syscall(434, $pa, 0)
            if fd < 0: print('pidfd as $who: denied'); sys.exit()
            got = libc.syscall(438, fd, 3, 0)
            print('pidfd as $who: ' + ('allowed' if got >= 0 else 'denied'))
            "
            done
            """#.replacingOccurrences(of: "RUNTIME", with: runtime)
        try script.write(toFile: work + "/attack.sh", atomically: true, encoding: .utf8)
        let r = try vt(["run", "-f", spec, "-f", firmware + "/lm3s6965evb-firmware.yaml", "--timeout", "30s", "--", "sh", work + "/attack.sh"], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        // Serial lines end in CRLF, one Character to Swift: split on any newline.
        let uids = r.stdout.split(whereSeparator: \.isNewline).first { $0.hasPrefix("uids ") }?.split(separator: " ").dropFirst().compactMap { UInt32($0) } ?? []
        #expect(uids.count == 2 && uids[0] != uids[1] && uids.allSatisfy { $0 >= QEMUIdentity.base }, "\(r.stdout) \(r.stderr)")
        for line in r.stdout.split(whereSeparator: \.isNewline) where line.contains(" as ") {
            #expect(line.hasSuffix("denied"), "\(line)")
        }
        #expect(r.stdout.components(separatedBy: "denied").count - 1 == 6, "\(r.stdout)")
    }
}

/// Root with the runtime directory below a 0700 one (a login's /run/user/0):
/// QEMU's uid cannot pass through, so its own directory lives apart, and the
/// run works instead of failing.
@Suite(.serialized) struct PrivateRuntimeDirectoryTests {
    @Test(.enabled(if: getuid() == 0)) func runWorksAsRootBelowA0700Directory() throws {
        let parent = "/tmp/vt-0700-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkdir(parent, 0o700) == 0)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let runtime = parent + "/vtarget"
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: QEMUSandbox.privateBase)) ?? [])
        let r = try vt(["run"] + exampleArgs("lm3s6965evb") + ["--until", "echo ready", "--timeout", "20s"], runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("echo ready"), "\(r.stdout)")
        let after = Set((try? FileManager.default.contentsOfDirectory(atPath: QEMUSandbox.privateBase)) ?? [])
        #expect(after.subtracting(before).isEmpty, "QEMU's directory outlived the run: \(after.subtracting(before))")
        expectNothingLeft(runtime)
    }
}

/// `vtarget doctor` shows each protection as the probe, spawned as QEMU is,
/// finds it in /proc.
@Suite struct DoctorTests {
    @Test func doctorVerifiesFromProc() throws {
        let runtime = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let r = try vt(["doctor"], runtime: runtime)
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("29 of 29 denied system calls got EPERM"), "\(r.stdout)")
        #expect(r.stdout.contains("status NoNewPrivs: 1") && r.stdout.contains("status Seccomp: 2"), "\(r.stdout)")
        if getuid() == 0 {
            for kind in ["net", "mnt", "pid", "ipc", "uts"] {
                #expect(r.stdout.contains("\(kind) namespace: its own"), "\(kind): \(r.stdout)")
            }
            #expect(r.stdout.contains("status CapBnd: 0000000000000000"), "\(r.stdout)")
            // Read from the mount table a child spawned as QEMU sees.
            for tree in ["/tmp", "/var/tmp", "/dev/shm"] {
                #expect(r.stdout.contains("  \(tree): a private empty tmpfs (16 MiB scratch)"), "\(tree): \(r.stdout)")
            }
            // Its root, files and /proc, as the probe sees them.
            #expect(r.stdout.contains("  root: a private tmpfs"), "\(r.stdout)")
            for path in ["/etc/shadow", "/etc/passwd", "/etc/hostname", "/home", "/root", "/run", "/var/lib", "/sys"] {
                #expect(r.stdout.contains("  \(path): absent"), "\(path): \(r.stdout)")
            }
            #expect(r.stdout.contains("  /proc: its own, no other process visible"), "\(r.stdout)")
            #expect(r.stdout.contains("sidecar cgroups") , "\(r.stdout)")
        }
    }
}
