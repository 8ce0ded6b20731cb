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
    /// With `namespaces`: stay in the host's network namespace (the others
    /// stay private). A VM's user-mode NAT forwards its ports from the
    /// host's 127.0.0.1 and reaches out through the host, as KubeVirt's
    /// masquerade does through the pod's network.
    public var hostNetwork = false
    /// For a user without privileges: a user namespace of its own, which is
    /// what lets it have the other two.
    public var userNamespace = false
    /// With `namespaces`: empty tmpfs mounted over these host directories in
    /// the child's mount namespace (after it entered its working directory).
    public var privateMounts: [PrivateMount] = []

    /// With `namespaces`: the child pivots into a root of its own holding
    /// only this; `privateMounts` are then made inside it, not over the
    /// host's trees. Nil: the host's tree, with `privateMounts` over it.
    public var minimalRoot: MinimalRoot?

    /// What a child sees as `/`: an empty read-only tmpfs with host paths
    /// bound in at their own paths, symlinks, scratch tmpfs (the policy's
    /// `privateMounts`) and a fresh /proc showing only its pid namespace.
    public struct MinimalRoot: Sendable, Equatable {
        public struct Bind: Sendable, Equatable {
            public var path: String
            public var readOnly: Bool

            public init(_ path: String, readOnly: Bool = true) {
                self.path = path
                self.readOnly = readOnly
            }
        }

        /// Host paths bound at the same path; those absent on the host are skipped.
        public var binds: [Bind]
        /// (link, target) pairs: `/lib64 -> usr/lib64`, `/dev/fd -> /proc/self/fd`.
        public var symlinks: [(link: String, target: String)]
        /// The working directory bound writable at its own path (QEMU's
        /// directory: its firmware copies, FIFOs, sockets and overlays).
        public var bindWorkingDirectory: Bool
        /// proc mount options, tried in order: `subset=pid` (Linux 5.8)
        /// hides everything but the processes, `hidepid` others' details.
        /// When the kernel takes none, the child has no /proc.
        public var procOptions: [String] = ["hidepid=invisible,subset=pid", "hidepid=2,subset=pid", "hidepid=2", ""]

        public init(binds: [Bind], symlinks: [(link: String, target: String)], bindWorkingDirectory: Bool) {
            self.binds = binds
            self.symlinks = symlinks
            self.bindWorkingDirectory = bindWorkingDirectory
        }

        public static func == (a: MinimalRoot, b: MinimalRoot) -> Bool {
            a.binds == b.binds && a.symlinks.map { [$0.link, $0.target] } == b.symlinks.map { [$0.link, $0.target] }
                && a.bindWorkingDirectory == b.bindWorkingDirectory && a.procOptions == b.procOptions
        }
    }

    /// An empty tmpfs over a host directory, seen only by the child.
    public struct PrivateMount: Sendable, Equatable {
        public var path: String
        /// tmpfs options: its size, inode count and mode.
        public var options: String
        public var readOnly: Bool

        public init(path: String, options: String, readOnly: Bool) {
            self.path = path
            self.options = options
            self.readOnly = readOnly
        }

        /// MS_NOSUID | MS_NODEV | MS_NOEXEC, and MS_RDONLY when read-only.
        public var flags: UInt { 0x2 | 0x4 | 0x8 | (readOnly ? 0x1 : 0) }
    }

    /// The scratch trees of a minimal root, in mount order: `/dev` (only
    /// the nodes bound onto it), then small writable `/tmp`, `/var/tmp`
    /// (QEMU's `snapshot=on` files) and `/dev/shm`.
    public static let minimalRootMounts: [PrivateMount] =
        [PrivateMount(path: "/dev", options: "size=64k,nr_inodes=64,mode=0755", readOnly: false)]
        + ["/tmp", "/var/tmp", "/dev/shm"].map { PrivateMount(path: $0, options: "size=16m,nr_inodes=1024,mode=1777", readOnly: false) }

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
