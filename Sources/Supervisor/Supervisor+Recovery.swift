#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import InstanceContract
import Sandbox
import HostOS
import TargetRuntime

extension Supervisor {
    // MARK: - Recovery

    /// After a start (or a crash): every instance the database says is
    /// active is re-adopted when its shim is still that process and got as
    /// far as Running; a shim caught half-started is killed; one that ended
    /// meanwhile is recorded with what its status file says. Then whatever
    /// should run and does not is started or scheduled.
    /// A database that cannot be read stops the start-up: taking it for an
    /// empty one would orphan every running shim.
    public func recover() async throws(SupervisorError) {
        let resources: [ResourceRow], rows: [InstanceRow]
        do {
            resources = try store.resources(namespace: nil)
            rows = try store.instances()
        } catch { throw .storage(error) }
        // Restart timers may fire while this runs: they wait for the namespace.
        let namespaces = Set(resources.map(\.namespace)).union(rows.map(\.namespace))
        try await exclusively(Array(namespaces)) { () async throws(SupervisorError) in
            try await recoverLocked(resources: resources, rows: rows)
        }
        scheduleStandby()
    }

    private func recoverLocked(resources: [ResourceRow], rows: [InstanceRow]) async throws(SupervisorError) {
        await stopOrphanShims(knowing: rows)
        // Each namespace's desired state, decoded once: pools are needed
        // before any start below, the rest for the reconcile at the end.
        var states: [String: DesiredState] = [:]
        for ns in Set(resources.map(\.namespace)) {
            if let state = try? desiredInstances(resources.filter { $0.namespace == ns }) {
                states[ns] = state
                for p in state.pools { poolTemplates[ns + "/" + p.pool.metadata.name] = p }
            }
        }
        for row in rows { if let expires = row.claimExpiresAt { scheduleClaimExpiry(row.key, at: expires) } }
        let ownExecutable = options.executable
        for var row in rows {
            let state = paths.instanceState(namespace: row.namespace, name: row.name)
            guard row.isActive, let pid = row.shimPID, let start = row.shimStartTime else {
                if row.desired == "running" && row.phase == .pending { await startInstance(row.key) }
                else if let next = row.nextRestartAt, row.desired == "running" {
                    scheduleRestart(row.key, uid: row.uid, after: max(0, next - ShimStatus.now))
                }
                continue
            }
            let identity = ProcessIdentity(pid: pid, startTime: UInt64(start))
            let alive = identity.isAlive && identity.executable == ownExecutable
            let st = ShimStatus.read(state.statusFile)
            if alive, let st, !st.isFinished, st.phase == .running {
                shims[row.key] = Shim(uid: row.uid, identity: identity, child: nil)
                statusWatcher.watch(state.directory, key: row.key)
                adopted += 1
                commit(row, event("Normal", row, "Adopted", "re-adopted shim pid \(pid) (QEMU pid \(st.qemuPID.map(String.init) ?? "?"))"))
                let key = row.key, uid = row.uid
                watchers[key] = Task {
                    await identity.waitForExit()
                    await self.shimExited(key, uid: uid, status: nil)
                }
                statusChanged(key)
                continue
            }
            shims[row.key] = Shim(uid: row.uid, identity: identity, child: nil)
            if alive {
                // Half-started: its QEMU may not be fully wired; never adopt that.
                _ = signalProcess(pid: pid, startTime: UInt64(start), currentStartTime: Processes.startTime(of:), signal: SIGKILL)
                await identity.waitForExit()
                // The supervisor's failure, not the instance's: start it again.
                shims[row.key] = nil
                RuntimeDirectory.removeTree(paths.instance(namespace: row.namespace, name: row.name).directory)
                row.phase = .pending
                row.shimPID = nil
                row.shimStartTime = nil
                commit(row, event("Warning", row, "HalfStarted",
                                  "the supervisor stopped while this instance was starting; killed rather than adopted, starting it again"))
                await startInstance(row.key)
            } else if st == nil {
                // It never began: the supervisor died before giving it the go.
                shims[row.key] = nil
                row.phase = .pending
                row.shimPID = nil
                row.shimStartTime = nil
                commit(row, event("Normal", row, "NeverStarted", "the supervisor stopped before this instance began; starting it"))
                await startInstance(row.key)
            } else {
                if st?.isFinished != true {
                    log("\(row.key): shim pid \(pid) is gone and left no final status")
                }
                shimExited(row.key, uid: row.uid, status: nil)
            }
        }
        // Bring every namespace in line with its resources: an instance whose
        // resource was deleted just before a crash goes now, pools refill.
        // A namespace with no resources left wants nothing; one that failed to decode is left alone.
        let active: [InstanceRow]
        do { active = try store.instances() } catch { throw .storage(error) }
        for ns in Set(resources.map(\.namespace)).union(active.map(\.namespace)).sorted() {
            let hasResources = resources.contains { $0.namespace == ns }
            if let state = states[ns] ?? (hasResources ? nil : DesiredState()) {
                try await reconcile(namespace: ns, desired: state)
            }
        }
        // Directories of instances nobody knows (a crash between the two
        // removals of a delete) are removed.
        let base = paths.runtimeDirectory
        for ns in ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []) where ns.hasPrefix("ns-") {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: base + "/" + ns)) ?? [] {
                let key = String(ns.dropFirst(3)) + "/" + name
                if !rows.contains(where: { $0.key == key && $0.isActive }) { RuntimeDirectory.removeTree(base + "/" + ns + "/" + name) }
            }
        }
    }
}
