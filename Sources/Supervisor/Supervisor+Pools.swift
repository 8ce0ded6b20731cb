#if canImport(Glibc)
import InstanceContract
import Glibc
#endif
import ControlAPI
import QMP
import Sandbox
import TargetRuntime
import TargetSpec

/// Warm pools: members are ordinary instances with a `pool` column. The pool
/// keeps `minReady` unclaimed members (up to `maxInstances` in all); a claim
/// hands out a Ready one at once and tops the pool up behind it; a release
/// restores the member's `vt-ready` snapshot (loadvm) or restarts it.
extension Supervisor {
    public func pools(namespace: String?) throws(SupervisorError) -> [PoolInfo] {
        let rows = (try? store.instances(namespace: namespace)) ?? []
        return poolTemplates.values.filter { namespace == nil || $0.pool.metadata.namespace == namespace }
            .sorted { ($0.pool.metadata.namespace, $0.pool.metadata.name) < ($1.pool.metadata.namespace, $1.pool.metadata.name) }
            .map { t in
                let p = t.pool
                let members = rows.filter { $0.namespace == p.metadata.namespace && $0.pool == p.metadata.name }
                return PoolInfo(namespace: p.metadata.namespace, name: p.metadata.name, target: p.targetName,
                                minReady: p.minReady, maxInstances: p.maxInstances,
                                recycle: t.snapshots ? "snapshot" : "restart", members: members.count,
                                ready: members.filter { isClaimable($0, t) }.count,
                                claimed: members.filter { $0.claimedAt != nil }.count)
            }
    }

    func isClaimable(_ row: InstanceRow, _ t: PoolTemplate) -> Bool {
        row.claimedAt == nil && row.phase == .running && row.ready && (!t.snapshots || row.snapshot) && row.desired == "running"
    }

    /// Unclaimed members whose spec is out of date go; new ones come until
    /// `minReady` are unclaimed (and starting or ready), within `maxInstances`.
    func topUp(namespace: String, pool name: String) async {
        guard let t = poolTemplates[namespace + "/" + name] else { return }
        var members = ((try? store.instances(namespace: namespace)) ?? []).filter { $0.pool == name }
        for m in members where m.claimedAt == nil && m.specHash != t.member.hash {
            await removeInstance(m)
        }
        members = ((try? store.instances(namespace: namespace)) ?? []).filter { $0.pool == name }
        let warm = members.filter { $0.claimedAt == nil && ($0.isActive || $0.nextRestartAt != nil) }.count
        let missing = min(t.pool.minReady - warm, t.pool.maxInstances - members.count)
        guard missing > 0 else { return }
        for _ in 0..<missing {
            var d = t.member
            d.name = name + "-" + String(Self.newUID().prefix(5))
            // The member is an instance of the pool's target, by its own name.
            d.spec = """
                apiVersion: kubetarget.dev/v1alpha1
                kind: VirtualTargetInstance
                metadata:
                  name: \(d.name)
                  namespace: \(namespace)
                spec:
                  targetRef:
                    kind: QemuVirtualTarget
                    name: \(d.target)
                ---

                """ + d.spec
            await create(d, pool: name)
        }
    }

    /// Hands out a claimable member, waiting up to `timeout` for one.
    public func claim(namespace: String, pool name: String, ttl: Double?, timeout: Double) async throws(SupervisorError) -> InstanceInfo {
        guard let t = poolTemplates[namespace + "/" + name] else { throw .notFound("pool \"\(name)\" in namespace \(namespace)") }
        let deadline = ShimStatus.now + timeout
        while true {
            let seen = changes
            let members = ((try? store.instances(namespace: namespace)) ?? []).filter { $0.pool == name }
            if var row = members.filter({ isClaimable($0, t) }).min(by: { ($0.readyAt ?? 0) < ($1.readyAt ?? 0) }) {
                let now = ShimStatus.now
                row.claimedAt = now
                row.claimExpiresAt = (ttl ?? t.pool.claimTTLSeconds).map { now + $0 }
                commit(row, event("Normal", row, "Claimed", "claimed from pool \(name)" + (row.claimExpiresAt.map { _ in " for \(Self.format((ttl ?? t.pool.claimTTLSeconds)!))" } ?? "")))
                if let expires = row.claimExpiresAt { scheduleClaimExpiry(row.key, at: expires) }
                // The pool refills behind the claim, without making it wait.
                let ns = namespace
                topUps[namespace + "/" + name] = Task { await self.topUp(namespace: ns, pool: name) }
                return info(row)
            }
            await topUp(namespace: namespace, pool: name)
            guard ShimStatus.now < deadline else {
                let claimed = members.filter { $0.claimedAt != nil }.count
                throw SupervisorError(409, "pool \"\(name)\" is exhausted: \(claimed) of maxInstances \(t.pool.maxInstances) claimed, "
                                      + "\(members.count - claimed) warming up; none became ready within \(Self.format(timeout))")
            }
            // Woken by the next change of any instance (a member Ready and snapshotted), not by polling.
            _ = await withDeadline(deadline - ShimStatus.now) { await self.nextChange(after: seen) }
        }
    }

    /// Back to the pool: loadvm where the member has its snapshot (a QMP
    /// round trip on its proxy socket), else a restart.
    public func release(namespace: String, name: String, reason: String = "released") async throws(SupervisorError) -> ObjectResult {
        guard var row = try? store.instance(namespace, name) else { throw .notFound("instance \"\(name)\" in namespace \(namespace)") }
        guard let pool = row.pool else { throw SupervisorError(400, "instance \"\(name)\" is not a pool member; stop or delete it instead") }
        guard row.claimedAt != nil else { throw SupervisorError(409, "instance \"\(name)\" is not claimed") }
        claimTimers.removeValue(forKey: row.key)?.cancel()
        var how = "restarted"
        if row.snapshot, row.phase == .running, restoreSnapshot(paths.instance(namespace: namespace, name: name).qmpSocket) {
            how = "snapshot restored"
            // The shim drops the previous claimer's clients and serial replay.
            if let shim = shims[row.key] { send(SIGUSR1, to: shim) }
            row.claimedAt = nil
            row.claimExpiresAt = nil
            commit(row, event("Normal", row, "Released", "\(reason): \(how)"))
        } else {
            row.claimedAt = nil
            row.claimExpiresAt = nil
            commit(row, event("Normal", row, "Released", "\(reason): restarting"))
            await restart(row.key, message: "recycled by restart")
        }
        await topUp(namespace: namespace, pool: pool)
        return ObjectResult(kind: "VirtualTargetInstance", namespace: namespace, name: name, action: how)
    }

    /// `loadvm vt-ready` then `cont`; false (and the caller restarts) on any error.
    func restoreSnapshot(_ qmpSocket: String) -> Bool {
        guard let qmp = try? QMPSocketClient(path: qmpSocket, timeout: 5) else { return false }
        guard let r = try? qmp.execute(.object([
            "execute": .string("human-monitor-command"),
            "arguments": .object(["command-line": .string("loadvm vt-ready")]),
        ])), (r.stringValue ?? "").isEmpty else { return false }
        _ = try? qmp.execute(.object(["execute": .string("cont")]))
        return true
    }

    func scheduleClaimExpiry(_ key: String, at time: Double) {
        let delay = max(0, time - ShimStatus.now)
        claimTimers[key] = Task {
            try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            if !Task.isCancelled { await self.claimExpired(key) }
        }
    }

    func claimExpired(_ key: String) async {
        claimTimers[key] = nil
        let (namespace, name) = split(key)
        guard let row = try? store.instance(namespace, name), let expires = row.claimExpiresAt, expires <= ShimStatus.now + 0.05 else { return }
        _ = try? await release(namespace: namespace, name: name, reason: "claim TTL expired")
    }
}
