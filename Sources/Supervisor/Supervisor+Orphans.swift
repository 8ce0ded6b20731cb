#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import InstanceContract
import Sandbox
import HostOS
import TargetRuntime

extension Supervisor {
    /// Shims of this state directory that no row names: a database that lost
    /// its WAL (or was replaced) no longer knows them, and adopting them is
    /// impossible without their rows. They are stopped (their QEMUs die with
    /// them) and said so on stderr, rather than left running unseen.
    func stopOrphanShims(knowing rows: [InstanceRow]) async {
        let known = Set(rows.compactMap(\.shimPID))
        let ours = paths.stateDirectory + "/instances/"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for pid in entries.compactMap(Int32.init) where pid != getpid() && !known.contains(pid) {
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
            let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let i = argv.firstIndex(of: ShimArguments.option), i + 1 < argv.count,
                  let shim = try? ShimArguments.parse(argv[i + 1]), shim.statusFile.hasPrefix(ours),
                  let identity = ProcessIdentity.of(pid), identity.executable == options.executable else { continue }
            log("shim pid \(pid) of \(shim.instance) is in no row of the state database (was its -wal file lost?); stopping it")
            kill(pid, SIGTERM)
            if await withDeadline(5, { await identity.waitForExit() }) == nil {
                kill(pid, SIGKILL)
                await identity.waitForExit()
            }
        }
    }
}
