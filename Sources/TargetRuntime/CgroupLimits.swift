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

    /// CPU time on top of one core per vCPU, for QEMU's own threads: the
    /// main loop, the block layer's workers, RCU. With the quota at exactly
    /// the vCPUs, a 1-vCPU VM was throttled in 5 of its first 6 periods
    /// (18 ms in all, `cpu.stat`) while its vCPU ran flat out and its
    /// workers read the boot disk, and reached its console ~10 ms after the
    /// same QEMU unlimited. KubeVirt's `isolateEmulatorThread` likewise
    /// gives the emulator a core beside the vCPUs.
    public static let overheadCores = 1

    /// Creates the group; nil with the reason when limits cannot be applied.
    /// `cpus`: the guest's vCPUs; the quota is that plus `overheadCores`.
    public static func create(name: String, memoryBytes: UInt64, cpus: Int) -> (CgroupLimits?, String) {
        let leaf = "vtarget-\(getpid())-\(name)"
        let limitBytes = memoryBytes + overheadBytes
        let period = 100_000
        let cores = cpus + overheadCores
        switch layout() {
        case .v2(let dir, true, _):
            let path = dir + "/" + leaf
            guard mkdir(path, 0o755) == 0 || errno == EEXIST,
                  write(path + "/memory.max", "\(limitBytes)"),
                  write(path + "/cpu.max", "\(cores * period) \(period)") else {
                rmdir(dir + "/" + leaf)
                return (nil, "cannot set limits in \(path): \(String(cString: strerror(errno)))")
            }
            return (CgroupLimits(directories: [path]), "")
        case .v1(let mem?, let cpu?):
            let m = mem + "/" + leaf, c = cpu + "/" + leaf
            guard mkdir(m, 0o755) == 0 || errno == EEXIST, mkdir(c, 0o755) == 0 || errno == EEXIST,
                  write(m + "/memory.limit_in_bytes", "\(limitBytes)"),
                  write(c + "/cpu.cfs_period_us", "\(period)"),
                  write(c + "/cpu.cfs_quota_us", "\(cores * period)") else {
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

    /// Where a process group of its own can be made: the cgroup v2
    /// hierarchy (unified, or hybrid's `/sys/fs/cgroup/unified`) at
    /// vtarget's own group, when it may write there. No controller is
    /// needed: the group is only for finding and killing all it holds.
    public static func processGroupBase() -> (String?, String) {
        guard let own = ownV2Path() else { return (nil, "no cgroup v2 hierarchy (neither unified nor hybrid)") }
        for mount in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] where access(mount + "/cgroup.procs", F_OK) == 0
            && access(mount + "/cgroup.controllers", F_OK) == 0 {
            let dir = mount + (own == "/" ? "" : own)
            guard access(dir, W_OK) == 0 else {
                return (nil, "\(dir) is not writable here (not root, and no delegated cgroup v2 subtree)")
            }
            return (dir, "cgroup v2 below \(dir)")
        }
        return (nil, "no cgroup v2 hierarchy mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified")
    }

    /// A new, empty group for one sidecar (killed and removed by
    /// `ChildProcess.terminateGroup`); nil with the reason when there is none.
    public static func processGroup(name: String) -> (String?, String) {
        let (base, why) = processGroupBase()
        guard let base else { return (nil, why) }
        sweepAbandoned(in: base)
        let path = base + "/vtarget-\(getpid())-\(name)-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        guard mkdir(path, 0o755) == 0 else { return (nil, "cannot create \(path): \(String(cString: strerror(errno)))") }
        return (path, "")
    }

    /// Removes the empty groups a vtarget that was killed (no tear-down)
    /// left: `vtarget-PID-...` whose PID is gone. A group still holding a
    /// process is busy and stays.
    static func sweepAbandoned(in base: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: base) else { return }
        for name in names where name.hasPrefix("vtarget-") {
            guard let pid = pid_t(name.dropFirst("vtarget-".count).prefix { $0 != "-" }), pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            rmdir(base + "/" + name)
        }
    }

    /// vtarget's own group in the v2 hierarchy (the `0::` line).
    static func ownV2Path() -> String? {
        let mine = String(decoding: FileManager.default.contents(atPath: "/proc/self/cgroup") ?? Data(), as: UTF8.self)
        for line in mine.split(separator: "\n") where line.hasPrefix("0::") { return String(line.dropFirst(3)) }
        return nil
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
