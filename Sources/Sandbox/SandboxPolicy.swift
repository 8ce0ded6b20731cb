#if canImport(Glibc)
import Glibc
#endif

/// What confines a child: decided by the caller, applied between fork and
/// exec by the C shim, reported by `vtarget doctor`.
public struct SandboxPolicy: Sendable {
    /// System calls that fail with EPERM: what QEMU never needs and an
    /// attacker who owns QEMU wants.
    public static let deniedSyscalls = [
        "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
        "unshare", "setns", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd", "reboot", "swapon", "swapoff",
        "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "acct", "quotactl", "lookup_dcookie",
        // Reaching into other processes: another instance's fds (pidfd_getfd stole a
        // QMP socket and a disk's fd from a QEMU of the same uid), its memory, or a
        // signal. QEMU signals only its own threads (tgkill), which stays allowed.
        "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "process_madvise", "kcmp", "kill",
    ]

    public struct Limit: Sendable {
        public var resource: Int32
        public var soft: UInt64
        public var hard: UInt64
    }

    public var seccomp = true
    public var deny: [String] = deniedSyscalls
    /// False: sockets other than AF_UNIX fail (targets with no network device).
    public var network = false
    public var noNewPrivileges = true
    public var limits: [Limit] = [
        Limit(resource: Int32(RLIMIT_CORE.rawValue), soft: 0, hard: 0),
        Limit(resource: Int32(RLIMIT_NOFILE.rawValue), soft: 1024, hard: 1024),
        Limit(resource: Int32(RLIMIT_FSIZE.rawValue), soft: 64 << 30, hard: 64 << 30),
    ]
    /// uid and gid to drop to (root only).
    public var runAs: (uid: UInt32, gid: UInt32)?
    /// With `runAs`: the supplementary groups to keep (none by default).
    public var groups: [UInt32] = []
    /// Private network, mount, pid, ipc and uts namespaces.
    public var namespaces = false
    /// For a user without privileges: a user namespace of its own, which is
    /// what lets it have the other two.
    public var userNamespace = false

    public init() {}

    /// Everything off, for `--no-sandbox`.
    public static var none: SandboxPolicy {
        var p = SandboxPolicy()
        p.seccomp = false
        p.noNewPrivileges = false
        p.limits = []
        return p
    }
}
