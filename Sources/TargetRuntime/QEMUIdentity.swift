#if canImport(Glibc)
import Glibc
#endif
import HostOS

/// The uid and gid one QEMU runs as when vtarget is root: its own, held by a
/// lease no other instance on this machine can take while it lives. With a
/// shared uid (nobody) any other process of that uid could take QEMU's fds
/// with pidfd_getfd, signal it, or write into its UART FIFOs; with one uid per
/// instance, each QEMU can reach only its own files and nothing else's.
public struct QEMUIdentity: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32

    /// uids from here on are vtarget's: far above any login or system
    /// account and above the subordinate ranges container tools hand out.
    public static let base: UInt32 = 0x5654_0000  // "VT"
    public static let count: UInt32 = 0x1_0000

    /// Lock files of the leases: one per uid in use, flock'ed by the holder.
    public static let leaseDirectory = "/run/vtarget-ids"
}

/// A held uid: the lock is released when this is closed or the process ends
/// (the kernel drops an flock with its last descriptor), so a crashed shim
/// never leaves a uid taken.
public final class QEMUIdentityLease: @unchecked Sendable {
    public let identity: QEMUIdentity
    private var fd: Int32

    private init(identity: QEMUIdentity, fd: Int32) {
        self.identity = identity
        self.fd = fd
    }

    deinit { close() }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// The first free uid after a random start (so concurrent starts rarely
    /// contend for one file). Root only: the lease directory is root's.
    public static func acquire(directory: String = QEMUIdentity.leaseDirectory,
                               base: UInt32 = QEMUIdentity.base, count: UInt32 = QEMUIdentity.count) throws(RuntimeError) -> QEMUIdentityLease {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw RuntimeError("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let start = UInt32.random(in: 0..<count)
        for i in 0..<count {
            let slot = (start + i) % count
            let fd = open(directory + "/\(base + slot)", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if fd < 0 { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                return QEMUIdentityLease(identity: QEMUIdentity(uid: base + slot, gid: base + slot), fd: fd)
            }
            Glibc.close(fd)
        }
        throw RuntimeError("no free QEMU uid in \(base)..<\(base + count) (\(directory))")
    }
}
