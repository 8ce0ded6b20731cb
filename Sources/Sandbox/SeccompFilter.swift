import CSeccomp
#if canImport(Glibc)
import Glibc
#endif

public struct SandboxError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// A compiled seccomp BPF program: built with libseccomp in the parent,
/// because `seccomp_load` allocates and nothing may allocate after fork.
public struct SeccompFilter: Sendable {
    /// struct sock_filter[]: 8 bytes an instruction.
    public let program: [UInt8]
    public var instructionCount: Int { program.count / 8 }

    public static func build(_ policy: SandboxPolicy) throws(SandboxError) -> SeccompFilter {
        guard let ctx = seccomp_init(SCMP_ACT_ALLOW) else { throw SandboxError(message: "seccomp_init failed") }
        defer { seccomp_release(ctx) }
        let eperm = 0x0005_0000 | UInt32(EPERM)  // SCMP_ACT_ERRNO(EPERM)
        for name in policy.deny {
            let nr = seccomp_syscall_resolve_name(name)
            if nr == __NR_SCMP_ERROR { continue }  // not on this architecture (umount on x86_64)
            let rc = seccomp_rule_add_array(ctx, eperm, nr, 0, nil)
            if rc < 0 { throw SandboxError(message: "seccomp: cannot deny \(name): \(String(cString: strerror(-rc)))") }
        }
        if !policy.network {
            let refused = 0x0005_0000 | UInt32(EAFNOSUPPORT)
            for call in ["socket", "socketpair"] {
                var cmp = scmp_arg_cmp(arg: 0, op: SCMP_CMP_NE, datum_a: UInt64(AF_UNIX), datum_b: 0)
                let rc = seccomp_rule_add_array(ctx, refused, seccomp_syscall_resolve_name(call), 1, &cmp)
                if rc < 0 { throw SandboxError(message: "seccomp: cannot restrict \(call): \(String(cString: strerror(-rc)))") }
            }
        }
        // No NO_NEW_PRIVS from libseccomp: the shim sets it itself, in order.
        seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SandboxError(message: "pipe: \(String(cString: strerror(errno)))") }
        defer { close(fds[0]) }
        let rc = seccomp_export_bpf(ctx, fds[1])
        close(fds[1])
        if rc < 0 { throw SandboxError(message: "seccomp_export_bpf: \(String(cString: strerror(-rc)))") }
        var program: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &buf, buf.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            program += buf[0..<n]
        }
        guard !program.isEmpty, program.count % 8 == 0 else { throw SandboxError(message: "seccomp: empty or torn BPF program") }
        return SeccompFilter(program: program)
    }
}
