import Foundation
import Testing
import HostOS
import TargetRuntime

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
