#if canImport(Glibc)
import Glibc
#endif
import DiskImages
import HostOS
import InstanceContract
import QEMULaunch
import Sandbox
import TargetSpec
import YAMLTree

extension RunSession {
    /// Plans every target (nothing started yet): an error here is bad input.
    public func prepare(_ runnables: [RunnableTarget], runDirectory: String, yamlDirectory: @escaping (Drive) -> String?) async throws
        -> [PreparedTarget]
    {
        var out: [PreparedTarget] = []
        var problems: [Diagnostic] = []
        for r in runnables {
            let layout = config.supervised?.layout ?? .run(runDirectory, namespace: r.namespace, name: r.name)
            let dir = layout.directory
            guard let profile = catalog.lookup(r.target.qemu.profileName) else { continue }
            // <dir> holds vtarget's sockets; <dir>/qemu is QEMU's own (its cwd,
            // firmware, GDB socket), handed to QEMU's uid when vtarget is root,
            // so a compromised QEMU cannot replace the sockets clients use.
            let dropping = config.sandbox && QEMUSandbox.isRoot
            let qemuDir = try QEMUSandbox.qemuDirectory(for: layout, dropping: dropping)
            if mkdir(dir, dropping ? 0o711 : 0o700) != 0 || mkdir(qemuDir, 0o700) != 0 {
                throw RuntimeError("cannot create \(qemuDir): \(String(cString: strerror(errno)))")
            }
            if dropping { chmod(dir, 0o711) }
            // Sandboxed, QEMU sees neither the host's /home nor /tmp: firmware is copied in, disks go as fds.
            let resolver = DriveResolver(instanceDirectory: qemuDir, materialize: true, copyFirmware: config.sandbox, environment: config.environment)
            do {
                let drives = try await resolver.resolve(r, yamlDirectory: yamlDirectory)
                if dropping { try QEMUSandbox.handOver(qemuDir) }
                var target = r.target
                target.metadata.name = r.name  // the instance's name: QEMU's -name, output prefixes, variables
                var options = config.launch
                // Recorded with a snapshot at the start, a replay can run backwards (gdb's reverse-stepi).
                if options.recordReplay != nil {
                    options.recordReplay?.snapshot = profile.snapshots && RunSession.startSnapshotPossible(drives) ? RecordReplay.startSnapshot : nil
                }
                if config.supervised?.snapshot == true || options.recordReplay?.snapshot != nil, profile.snapshots {
                    options.snapshotImage = try await QemuImg(environment: config.environment).createSnapshotScratch(in: qemuDir)
                    if dropping { try QEMUSandbox.handOver(qemuDir) }
                }
                let planner = LaunchPlanner(host: config.host, options: options)
                let plan = try planner.plan(target, profile: profile, drives: drives, instanceDirectory: qemuDir)
                for path in layout.sockets(devices: plan.channels.filter { $0.role != .qmp }.map(\.device)) {
                    try RuntimeDirectory.checkSocketPath(path)
                }
                if let gdb = plan.gdbSocketPath { try RuntimeDirectory.checkSocketPath(gdb) }
                out.append((SessionInstance(r), plan, dir))
            } catch let e as DiagnosticError {
                problems += e.diagnostics
            }
        }
        if !problems.isEmpty { throw DiagnosticError(problems) }
        return out
    }
}
