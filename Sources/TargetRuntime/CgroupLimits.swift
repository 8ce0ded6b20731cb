#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import HostOS

/// Memory and CPU limits for one QEMU, in a cgroup of its own below the one
/// vtarget runs in: cgroup v2 where the controllers are delegated, else the
/// v1 memory and cpu hierarchies where they are writable.
public struct CgroupLimits: Sendable {
    /// QEMU's own needs on top of guest RAM: code cache, device state, I/O buffers.
    public static let overheadBytes: UInt64 = 512 << 20

    /// One directory per hierarchy; the QEMU pid goes into each.
    public let directories: [String]

    /// Whether limits can be applied here, and why not.
    public static func availability() -> (Bool, String) {
        switch layout() {
        case .v2(let dir, let ok, let why): return (ok, ok ? "cgroup v2 below \(dir)" : why)
        case .v1(let mem, let cpu):
            if let mem, let cpu { return (true, "cgroup v1 below \(mem) and \(cpu)") }
            return (false, "cgroup v1 memory and cpu hierarchies are not both writable")
        case .none(let why): return (false, why)
        }
    }

    /// Creates the group; nil with the reason when limits cannot be applied.
    public static func create(name: String, memoryBytes: UInt64, cpus: Int) -> (CgroupLimits?, String) {
        let leaf = "vtarget-\(getpid())-\(name)"
        let limitBytes = memoryBytes + overheadBytes
        let period = 100_000
        switch layout() {
        case .v2(let dir, true, _):
            let path = dir + "/" + leaf
            guard mkdir(path, 0o755) == 0 || errno == EEXIST,
                  write(path + "/memory.max", "\(limitBytes)"),
                  write(path + "/cpu.max", "\(cpus * period) \(period)") else {
                rmdir(dir + "/" + leaf)
                return (nil, "cannot set limits in \(path): \(String(cString: strerror(errno)))")
            }
            return (CgroupLimits(directories: [path]), "")
        case .v1(let mem?, let cpu?):
            let m = mem + "/" + leaf, c = cpu + "/" + leaf
            guard mkdir(m, 0o755) == 0 || errno == EEXIST, mkdir(c, 0o755) == 0 || errno == EEXIST,
                  write(m + "/memory.limit_in_bytes", "\(limitBytes)"),
                  write(c + "/cpu.cfs_period_us", "\(period)"),
                  write(c + "/cpu.cfs_quota_us", "\(cpus * period)") else {
                let why = String(cString: strerror(errno))
                rmdir(m); rmdir(c)
                return (nil, "cannot set cgroup v1 limits: \(why)")
            }
            return (CgroupLimits(directories: [m, c]), "")
        default:
            return (nil, availability().1)
        }
    }

    public func add(_ pid: pid_t) throws(RuntimeError) {
        for d in directories where !Self.write(d + "/cgroup.procs", "\(pid)") {
            throw RuntimeError("cannot move QEMU (pid \(pid)) into \(d): \(String(cString: strerror(errno)))")
        }
    }

    /// Removes the (by then empty) groups.
    public func remove() {
        for d in directories { rmdir(d) }
    }

    enum Layout {
        case v2(String, Bool, String)
        case v1(memory: String?, cpu: String?)
        case none(String)
    }

    static func layout() -> Layout {
        let mine = String(decoding: FileManager.default.contents(atPath: "/proc/self/cgroup") ?? Data(), as: UTF8.self)
        var paths: [String: String] = [:]
        for line in mine.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            for controller in parts[1].split(separator: ",") { paths[String(controller)] = String(parts[2]) }
            if parts[0] == "0" { paths[""] = String(parts[2]) }
        }
        if access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0, let own = paths[""] {
            let dir = "/sys/fs/cgroup" + (own == "/" ? "" : own)
            let enabled = String(decoding: FileManager.default.contents(atPath: dir + "/cgroup.subtree_control") ?? Data(), as: UTF8.self)
            let ok = enabled.contains("memory") && enabled.contains("cpu") && access(dir, W_OK) == 0
            return .v2(dir, ok, ok ? "" : "cgroup v2: memory and cpu are not delegated to \(dir) (run under a delegated systemd scope)")
        }
        func v1(_ controller: String) -> String? {
            guard let own = paths[controller] else { return nil }
            let dir = "/sys/fs/cgroup/\(controller)" + (own == "/" ? "" : own)
            return access(dir, W_OK) == 0 ? dir : nil
        }
        if paths["memory"] != nil || paths["cpu"] != nil { return .v1(memory: v1("memory"), cpu: v1("cpu")) }
        return .none("no cgroup hierarchy found")
    }

    @discardableResult
    static func write(_ path: String, _ value: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        return Glibc.write(fd, bytes, bytes.count) == bytes.count
    }
}
