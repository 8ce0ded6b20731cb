#if canImport(Glibc)
import Glibc
#endif
import Sandbox

/// The confinement every QEMU gets, on a laptop as a user and in CI as root.
public enum QEMUSandbox {
    /// The unprivileged identity QEMU runs as when vtarget is root.
    public static let unprivilegedID: (uid: UInt32, gid: UInt32) = (65534, 65534)

    public static var isRoot: Bool { geteuid() == 0 }

    public static func policy(enabled: Bool) -> SandboxPolicy {
        guard enabled else { return .none }
        var p = SandboxPolicy()
        // No target has a network device yet: QEMU only ever needs AF_UNIX.
        p.network = false
        if isRoot {
            p.runAs = unprivilegedID
            p.namespaces = true
        }
        return p
    }

    /// One line per protection: what `vtarget doctor` and a run report.
    public static func protections(enabled: Bool) -> [(name: String, active: Bool, why: String)] {
        guard enabled else {
            return [("sandbox", false, "--no-sandbox: QEMU runs unconfined")]
        }
        let root = isRoot
        return [
            ("seccomp filter", true, "\(SandboxPolicy.deniedSyscalls.count) system calls fail with EPERM; sockets other than AF_UNIX refused"),
            ("no_new_privs", true, "set before exec"),
            ("rlimits", true, "core 0, 1024 open files, 64 GiB file size"),
            ("QEMU -sandbox", true, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"),
            ("unprivileged uid", root, root ? "QEMU runs as uid \(unprivilegedID.uid), no capabilities" : "vtarget is not root: QEMU runs as you, with no capabilities"),
            ("network namespace", root, root ? "private, empty" : "needs root (unprivileged user namespaces are not used yet)"),
            ("mount namespace", root, root ? "private, nothing propagates back" : "needs root (unprivileged user namespaces are not used yet)"),
            { let (ok, why) = CgroupLimits.availability(); return ("cgroup limits", ok, ok ? "memory (guest RAM + 512 MiB) and CPU (one core per vCPU), \(why)" : why) }(),
            ("never orphaned", true, "PR_SET_PDEATHSIG from the forking thread, which outlives QEMU; signals through a pidfd"),
        ]
    }

    /// Hands QEMU's own directory to the identity it runs as.
    public static func handOver(_ directory: String) throws(RuntimeError) {
        guard isRoot else { return }
        let (uid, gid) = unprivilegedID
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
