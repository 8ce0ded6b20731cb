#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HostOS
import InstanceContract
import Sandbox
import Synchronization

/// The confinement every QEMU gets, on a laptop as a user and in CI as root.
public enum QEMUSandbox {
    /// The unprivileged identity QEMU runs as when vtarget is root.
    public static let unprivilegedID: (uid: UInt32, gid: UInt32) = (65534, 65534)

    public static var isRoot: Bool { geteuid() == 0 }

    /// `qemuDirectory`: the instance's own directory, whose QEMU gets a uid
    /// of its own (see `identity(for:)`); without one, the shared nobody
    /// (`sandbox-exec`, the doctor's probe).
    /// `hostNetwork`: the plan has a user-mode network (a VM's pod network):
    /// QEMU needs inet sockets in the host's network namespace.
    /// `accel`: the plan's accelerator; /dev/kvm is in QEMU's root only
    /// when it names kvm (nil: unknown, so it is there when the host has it).
    /// `qemuPath`: the binary, whose install prefix is bound in when it is
    /// not below /usr (a QEMU built into /opt/qemu finds its firmware there).
    public static func policy(enabled: Bool, qemuDirectory: String? = nil, hostNetwork: Bool = false,
                              accel: String? = nil, qemuPath: String? = nil) async throws(RuntimeError) -> SandboxPolicy {
        guard enabled else { return .none }
        var p = SandboxPolicy()
        // Boards have no network device: their QEMU only ever needs AF_UNIX.
        p.network = hostNetwork
        p.hostNetwork = hostNetwork
        if isRoot {
            if let qemuDirectory {
                let id = try identity(for: qemuDirectory)
                p.runAs = (id.uid, id.gid)
            } else {
                p.runAs = unprivilegedID
            }
        }
        if await namespacesWork() {
            p.userNamespace = !isRoot
            p.namespaces = true
            p.privateMounts = SandboxPolicy.minimalRootMounts
            p.minimalRoot = minimalRoot(ownDirectory: qemuDirectory != nil, hostNetwork: hostNetwork, accel: accel, qemuPath: qemuPath)
        }
        return p
    }

    /// QEMU's whole view of the file system (see SandboxPolicy.MinimalRoot):
    /// its own directory; /usr read-only (the binary, its libraries and
    /// modules, and the firmware blobs in /usr/share/qemu, seabios, OVMF and
    /// /usr/lib/ipxe); of /etc only the loader's cache, and the resolver's
    /// file for a user-mode network (libslirp forwards the guest's DNS to
    /// the nameserver named there); the device nodes it opens. No /sys:
    /// QEMU only probes NUMA and pmem there and goes on without.
    static func minimalRoot(ownDirectory: Bool, hostNetwork: Bool, accel: String?, qemuPath: String?) -> SandboxPolicy.MinimalRoot {
        typealias Bind = SandboxPolicy.MinimalRoot.Bind
        var binds = [Bind("/usr"), Bind("/etc/ld.so.cache")]
        var links: [(link: String, target: String)] = []
        // Merged /usr (Debian): /lib64 -> usr/lib64 holds the ELF interpreter.
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            var buf = [CChar](repeating: 0, count: 4096)
            let n = readlink(top, &buf, buf.count - 1)
            if n > 0 {
                links.append((top, String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)))
            } else if access(top, F_OK) == 0 {
                binds.append(Bind(top))
            }
        }
        if let prefix = qemuPath.flatMap(installPrefix) { binds.append(Bind(prefix)) }
        if hostNetwork { binds.append(Bind("/etc/resolv.conf")) }
        var devices = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]
        if accel.map({ $0.contains("kvm") }) ?? true { devices.append("/dev/kvm") }
        binds += devices.map { Bind($0, readOnly: false) }
        links += [("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"), ("/dev/stdout", "/proc/self/fd/1"),
                  ("/dev/stderr", "/proc/self/fd/2")]
        return SandboxPolicy.MinimalRoot(binds: binds, symlinks: links, bindWorkingDirectory: ownDirectory)
    }

    /// `/opt/qemu` for `/opt/qemu/bin/qemu-system-arm` when that prefix
    /// has QEMU's data (`share/qemu`) and is not below /usr already.
    static func installPrefix(_ qemuPath: String) -> String? {
        guard let real = realpath(qemuPath, nil) else { return nil }
        defer { free(real) }
        let path = String(cString: real)
        guard !path.hasPrefix("/usr/") else { return nil }
        let bin = (path as NSString).deletingLastPathComponent
        let prefix = (bin as NSString).deletingLastPathComponent
        guard prefix != "/", access(prefix + "/share/qemu", F_OK) == 0 else { return nil }
        return prefix
    }

    /// Whether QEMU can have its namespaces and private mounts here: as
    /// root (not in a container that withholds CAP_SYS_ADMIN), or as a user
    /// where the kernel allows unprivileged user namespaces (then the user
    /// namespace is what allows the rest). Tried once per process, with
    /// /bin/true spawned exactly as QEMU would be.
    public static func namespacesWork() async -> Bool {
        if let known = namespaceProbe.withLock({ $0 }) { return known.ok }
        let (ok, why) = rootNeedsNoProbe() ? (true, "") : await probeNamespaces()
        namespaceProbe.withLock { $0 = (ok, why) }
        return ok
    }

    /// Why namespaces are missing, once `namespacesWork()` said so.
    static var namespaceFailure: String { namespaceProbe.withLock { $0?.why } ?? "" }

    /// Root holding CAP_SYS_ADMIN under no seccomp filter of its own can
    /// make every namespace and mount QEMU gets (only an LSM could still
    /// refuse, and then QEMU's spawn fails naming the step): the probe's
    /// spawn, about 1.5 ms a run, is saved.
    private static func rootNeedsNoProbe() -> Bool {
        guard isRoot else { return false }
        guard let status = FileManager.default.contents(atPath: "/proc/self/status") else { return false }
        let bytes = [UInt8](status)
        var capEff: UInt64?, seccomp: String?
        // Only the two lines wanted are taken apart: filtering every
        // line's characters cost more than the rest of the check.
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        where line.hasPrefix("CapEff:") || line.hasPrefix("Seccomp:") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.filter { !$0.isWhitespace } }
            guard parts.count == 2 else { continue }
            if parts[0] == "CapEff" { capEff = UInt64(parts[1], radix: 16) }
            if parts[0] == "Seccomp" { seccomp = parts[1] }
        }
        let capSysAdmin: UInt64 = 1 << 21
        return (capEff ?? 0) & capSysAdmin != 0 && seccomp == "0"
    }

    private static func probeNamespaces() async -> (Bool, String) {
        var p = SandboxPolicy.none
        p.userNamespace = !isRoot
        p.namespaces = true
        p.privateMounts = SandboxPolicy.minimalRootMounts
        p.minimalRoot = minimalRoot(ownDirectory: false, hostNetwork: false, accel: nil, qemuPath: nil)
        do {
            let child = try await ChildProcess.spawn(SpawnRequest(
                executable: "/bin/true", arguments: [], environment: [], workingDirectory: "/", fds: [-1, -1, -1], sandbox: p))
            let status = await child.waitForExit()
            return status == .exited(0) ? (true, "") : (false, "/bin/true in new namespaces ended \(status)")
        } catch {
            return (false, isRoot ? "root without CAP_SYS_ADMIN here (a container?): \(error)"
                                  : "this kernel refuses unprivileged user namespaces: \(error)")
        }
    }

    private static let namespaceProbe = Mutex<(ok: Bool, why: String)?>(nil)

    /// One line per protection: what `vtarget doctor` and a run report.
    public static func protections(enabled: Bool) async -> [(name: String, active: Bool, why: String)] {
        guard enabled else {
            return [("sandbox", false, "--no-sandbox: QEMU runs unconfined")]
        }
        let root = isRoot
        let ns = await namespacesWork()
        let missing = namespaceFailure
        let inUserNS = root ? "" : " (in an unprivileged user namespace)"
        let scratch = SandboxPolicy.minimalRootMounts.filter { $0.path != "/dev" }.map(\.path).joined(separator: ", ")
        return [
            ("seccomp filter", true, "\(SandboxPolicy.deniedSyscalls.count) system calls fail with EPERM; sockets other than AF_UNIX refused"),
            ("no_new_privs", true, "set before exec"),
            ("rlimits", true, "core 0, 1024 open files, 64 GiB file size"),
            ("QEMU -sandbox", true, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"),
            ("unprivileged uid", true, root ? "each QEMU runs as a uid of its own (\(QEMUIdentity.base) and up, leased in \(QEMUIdentity.leaseDirectory)), no capabilities"
                : "QEMU runs as you (not root), with no capabilities"),
            ("network namespace", ns, ns ? "private, empty" + inUserNS : missing),
            ("mount namespace", ns, ns ? "private, nothing propagates back" + inUserNS : missing),
            ("minimal root", ns, ns ? "QEMU pivots into an empty read-only tmpfs holding only its own directory, /usr and the loader's "
                + "cache (read-only), the device nodes it opens, a fresh /proc of its pid namespace and scratch tmpfs at \(scratch) "
                + "(16 MiB, its alone); disk images come as fds" : missing + ": QEMU sees the host's whole tree and /proc"),
            ("pid, ipc and uts namespaces", ns, ns ? "QEMU is pid 1 of its own: no other process to see or signal, no host SysV IPC" : missing),
            // Not a missing protection for a user: QEMU never had a capability
            // to drop, and no_new_privs keeps it from gaining one. Reported
            // inactive, every run as a user warned of a weaker sandbox.
            ("no capabilities", true, root ? "none effective, and the bounding set emptied before QEMU drops to its uid"
                : "QEMU never had any (not root), and no_new_privs keeps it from gaining one"),
            { let (ok, why) = CgroupLimits.availability(); return ("cgroup limits", ok, ok ? "memory (guest RAM + 512 MiB) and CPU (one core per vCPU, and one for QEMU's own threads), \(why)" : why) }(),
            { let (dir, why) = CgroupLimits.processGroupBase()
              return ("sidecar cgroups", dir != nil, dir != nil ? "each sidecar in a cgroup of its own (\(why)), killed whole with its instance"
                      : why + "; sidecars end with their process group only (a setsid grandchild escapes)") }(),
            ("never orphaned", true, "PR_SET_PDEATHSIG from the forking thread, which outlives QEMU; signals through a pidfd"),
        ]
    }

    /// The uid this process's QEMU for `qemuDirectory` runs as: leased on
    /// first use and held until this process (the run, or the shim) ends,
    /// which is also when that QEMU ends.
    public static func identity(for qemuDirectory: String) throws(RuntimeError) -> QEMUIdentity {
        if let held = leases.withLock({ $0[qemuDirectory] }) { return held.identity }
        let lease = try QEMUIdentityLease.acquire()
        leases.withLock { $0[qemuDirectory] = lease }
        return lease.identity
    }

    private static let leases = Mutex<[String: QEMUIdentityLease]>([:])

    /// Where QEMU's own directories go, as root, when the runtime directory
    /// cannot be passed through by other uids (a login's 0700
    /// `/run/user/0`): a root-owned tree every uid may traverse but not list.
    public static let privateBase = "/run/vtarget-qemu"

    /// QEMU's own directory for an instance: `<instance>/qemu` where QEMU's
    /// uid can reach it, else a fresh one below `privateBase`, so vtarget
    /// runs as root whatever the runtime directory's mode.
    public static func qemuDirectory(for layout: InstanceLayout, dropping: Bool) throws(RuntimeError) -> String {
        guard dropping, untraversable(layout.directory) else { return layout.qemuDirectory }
        if mkdir(privateBase, 0o711) != 0 && errno != EEXIST {
            throw RuntimeError("cannot create \(privateBase): \(String(cString: strerror(errno)))", code: .io)
        }
        chmod(privateBase, 0o711)
        return privateBase + "/" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    }

    /// Whether QEMU's uid could not reach `<directory>/qemu`: the instance
    /// directory is 0711 as root, so only its parents can stop it.
    private static func untraversable(_ directory: String) -> Bool {
        let parent = String(directory[..<(directory.lastIndex(of: "/") ?? directory.endIndex)])
        return RuntimeDirectory.untraversable(parent) != nil
    }

    /// Hands QEMU's own directory to the identity it runs as.
    public static func handOver(_ directory: String) throws(RuntimeError) {
        guard isRoot else { return }
        let id = try identity(for: directory)
        let (uid, gid) = (id.uid, id.gid)
        guard let dir = opendir(directory) else { throw RuntimeError("cannot open \(directory)") }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            if lchown(directory + "/" + name, uid, gid) != 0 {
                throw RuntimeError("cannot hand \(directory)/\(name) to uid \(uid): \(String(cString: strerror(errno)))")
            }
        }
        if chown(directory, uid, gid) != 0 {
            throw RuntimeError("cannot hand \(directory) to uid \(uid): \(String(cString: strerror(errno)))")
        }
    }
}
