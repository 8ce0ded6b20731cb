#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import InstanceContract
import Sandbox
import HostOS
import TargetRuntime
import TargetSpec
import YAMLTree

/// Warm pools: members are ordinary instances with a `pool` column. The pool
/// keeps `minReady` unclaimed members (up to `maxInstances` in all); a claim
/// hands out a Ready one at once and tops the pool up behind it; a release
/// has the member's shim restore its `vt-ready` snapshot, or restarts it.
extension Supervisor {
    public func pools(namespace: String?) throws(SupervisorError) -> [PoolInfo] {
        let rows: [InstanceRow]
        do { rows = try store.instances(namespace: namespace) } catch { throw .storage(error) }
        return poolTemplates.values.filter { namespace == nil || $0.pool.metadata.namespace == namespace }
            .sorted { ($0.pool.metadata.namespace, $0.pool.metadata.name) < ($1.pool.metadata.namespace, $1.pool.metadata.name) }
            .map { t in
                let p = t.pool
                let members = rows.filter { $0.namespace == p.metadata.namespace && $0.pool == p.metadata.name }
                return PoolInfo(namespace: p.metadata.namespace, name: p.metadata.name, target: p.targetName,
                                minReady: p.minReady, maxInstances: p.maxInstances,
                                recycle: t.snapshots ? "snapshot" : "restart", members: members.count,
                                ready: members.filter { isClaimable($0, t) }.count,
                                claimed: members.filter { $0.claimedAt != nil }.count, labels: p.metadata.labels)
            }
    }

    func isClaimable(_ row: InstanceRow, _ t: PoolTemplate) -> Bool {
        row.claimedAt == nil && row.phase == .running && row.ready && (!t.snapshots || row.snapshot) && row.desired == "running"
    }

    func poolMembers(_ namespace: String, _ pool: String) throws(SupervisorError) -> [InstanceRow] {
        do { return try store.instances(namespace: namespace).filter { $0.pool == pool } } catch { throw .storage(error) }
    }

    /// Unclaimed members whose spec is out of date go; new ones come until
    /// `minReady` are unclaimed (and starting or ready), within
    /// `maxInstances`. Called with the namespace's lock held, so two top-ups
    /// never count the same members.
    func topUp(namespace: String, pool name: String) async throws(SupervisorError) {
        guard let t = poolTemplates[namespace + "/" + name] else { return }
        let members = try poolMembers(namespace, name)
        let plan = PoolArithmetic.topUp(
            members: members.map { .init(name: $0.name, claimed: $0.claimedAt != nil, warm: $0.isActive || $0.nextRestartAt != nil, specHash: $0.specHash) },
            specHash: t.member.hash, minReady: t.pool.minReady, maxInstances: t.pool.maxInstances)
        for m in members where plan.remove.contains(m.name) { await removeInstance(m) }
        for _ in 0..<plan.add {
            var d = t.member
            d.name = t.pool.memberName(unique: Self.newUID())
            // The member is an instance of the pool's target (a board's or a
            // VM), by its own name, Ready when the pool says (else as its target says).
            var spec: [(String, YAMLNode)] = [("targetRef", .mapping([("kind", .string(t.pool.targetKind)), ("name", .string(t.pool.targetName))]))]
            if let r = t.pool.readiness {
                spec.append(("readiness", .mapping([("device", .string(r.device)), ("pattern", .string(r.pattern)),
                                                    ("timeout", .string("\(Int((r.timeoutSeconds * 1000).rounded()))ms"))])))
            }
            let member = YAMLNode.mapping([
                ("apiVersion", .string("kubetarget.dev/v1alpha1")),
                ("kind", .string("VirtualTargetInstance")),
                ("metadata", .mapping([("name", .string(d.name)), ("namespace", .string(namespace))])),
                ("spec", .mapping(spec)),
            ])
            d.spec = YAMLEmitter.emit([member]) + "---\n" + d.spec
            await create(d, pool: name)
        }
    }

    /// The refill after a claim or a release, which they do not wait for.
    func topUpLater(namespace: String, pool name: String) {
        topUps[namespace + "/" + name] = Task {
            do { try await self.exclusively(namespace) { () async throws(SupervisorError) in try await self.topUp(namespace: namespace, pool: name) } } catch {
                self.log("pool \(namespace)/\(name): top-up failed: \(error)")
            }
        }
    }

    /// Hands out a claimable member, waiting up to `timeout` for one.
    public func claim(namespace: String, pool name: String, ttl: Double?, timeout: Double) async throws(SupervisorError) -> InstanceInfo {
        let deadline = ShimStatus.now + timeout
        while true {
            let seen = changes
            let claimed = try await exclusively(namespace) { () async throws(SupervisorError) -> InstanceInfo? in
                try await claimOnce(namespace: namespace, pool: name, ttl: ttl, deadline: deadline, timeout: timeout)
            }
            if let claimed { return claimed }
            // Woken by the next change of any instance (a member Ready and snapshotted), not by polling.
            _ = await withDeadline(max(0, deadline - ShimStatus.now)) { await self.nextChange(after: seen) }
        }
    }

    private func claimOnce(namespace: String, pool name: String, ttl: Double?, deadline: Double, timeout: Double) async throws(SupervisorError) -> InstanceInfo? {
        guard let t = poolTemplates[namespace + "/" + name] else { throw .notFound("pool \"\(name)\" in namespace \(namespace)") }
        let members = try poolMembers(namespace, name)
        if var row = members.filter({ isClaimable($0, t) }).min(by: { ($0.readyAt ?? 0) < ($1.readyAt ?? 0) }) {
            let now = ShimStatus.now
            let claimTTL = ttl ?? t.pool.claimTTLSeconds
            row.claimedAt = now
            row.claimExpiresAt = claimTTL.map { now + $0 }
            commit(row, event("Normal", row, "Claimed", "claimed from pool \(name)" + (claimTTL.map { " for \(Self.format($0))" } ?? "")))
            if let expires = row.claimExpiresAt { scheduleClaimExpiry(row.key, at: expires) }
            topUpLater(namespace: namespace, pool: name)
            return info(row)
        }
        try await topUp(namespace: namespace, pool: name)
        guard ShimStatus.now < deadline else {
            let claimed = members.filter { $0.claimedAt != nil }.count
            throw SupervisorError(409, "pool \"\(name)\" is exhausted: \(claimed) of maxInstances \(t.pool.maxInstances) claimed, "
                                  + "\(members.count - claimed) warming up; none became ready within \(Self.format(timeout))")
        }
        return nil
    }

    /// Back to the pool. Where the member has its snapshot, its shim restores
    /// it (SIGUSR1: stop, serial hubs reset, loadvm, cont) and reports in its
    /// status; the supervisor only waits for that report, holding no lock
    /// meanwhile, so no other call waits on a guest. Else, or when the
    /// restore failed, the member restarts.
    public func release(namespace: String, name: String, reason: String = "released") async throws(SupervisorError) -> ObjectResult {
        enum Path { case restored(uid: String, generation: Int), restarted }
        let key = namespace + "/" + name
        let path = try await exclusively(namespace) { () async throws(SupervisorError) -> Path in
            var row = try instanceRow(namespace, name)
            guard let pool = row.pool else { throw SupervisorError(400, "instance \"\(name)\" is not a pool member; stop or delete it instead") }
            guard row.claimedAt != nil else { throw SupervisorError(409, "instance \"\(name)\" is not claimed") }
            guard !releasing.contains(key) else { throw SupervisorError(409, "instance \"\(name)\" is being released") }
            claimTimers.removeValue(forKey: key)?.cancel()
            if row.snapshot, row.phase == .running, let shim = shims[key] {
                let generation = ShimStatus.read(paths.instanceState(namespace: namespace, name: name).statusFile)?.release?.generation ?? 0
                releasing.insert(key)
                send(SIGUSR1, to: shim)
                return .restored(uid: row.uid, generation: generation)
            }
            row.claimedAt = nil
            row.claimExpiresAt = nil
            commit(row, event("Normal", row, "Released", "\(reason): restarting"))
            await restart(key, message: "recycled by restart")
            try await topUp(namespace: namespace, pool: pool)
            return .restarted
        }
        guard case .restored(let uid, let generation) = path else {
            return ObjectResult(kind: "VirtualTargetInstance", namespace: namespace, name: name, action: "restarted")
        }
        let report = await releaseReport(key, after: generation, within: 30)
        return try await exclusively(namespace) { () async throws(SupervisorError) -> ObjectResult in
            releasing.remove(key)
            var row = try instanceRow(namespace, name)
            // Restarted, stopped or re-created meanwhile: that is its release.
            guard row.uid == uid, row.claimedAt != nil, let pool = row.pool else {
                return ObjectResult(kind: "VirtualTargetInstance", namespace: namespace, name: name, action: "restarted")
            }
            row.claimedAt = nil
            row.claimExpiresAt = nil
            var how = "snapshot restored"
            if report?.restored == true {
                commit(row, event("Normal", row, "Released", "\(reason): \(how)"))
            } else {
                how = "restarted"
                let why = report.map { "the restore failed (\($0.message ?? "loadvm"))" } ?? "the shim did not report a restore"
                commit(row, event("Warning", row, "Released", "\(reason): \(why); restarting"))
                await restart(key, message: "recycled by restart")
            }
            try await topUp(namespace: namespace, pool: pool)
            return ObjectResult(kind: "VirtualTargetInstance", namespace: namespace, name: name, action: how)
        }
    }

    /// The shim's release report newer than `generation`; nil when its shim
    /// ended or nothing came within `seconds`.
    func releaseReport(_ key: String, after generation: Int, within seconds: Double) async -> ReleaseReport? {
        let (namespace, name) = split(key)
        let statusFile = paths.instanceState(namespace: namespace, name: name).statusFile
        let deadline = ShimStatus.now + seconds
        while true {
            let seen = statusChanges[key, default: 0]
            if let r = ShimStatus.read(statusFile)?.release, r.generation > generation { return r }
            guard shims[key] != nil, ShimStatus.now < deadline else { return nil }
            _ = await withDeadline(deadline - ShimStatus.now) { await self.nextStatus(key, after: seen) }
        }
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
        guard let row = storedRow(namespace, name), let expires = row.claimExpiresAt, expires <= ShimStatus.now + 0.05 else { return }
        do { _ = try await release(namespace: namespace, name: name, reason: "claim TTL expired") } catch {
            log("\(key): release at claim expiry failed: \(error)")
        }
    }
}

extension Supervisor {
    /// A VM pool's member: the VM's own spec (with the instancetypes,
    /// preferences, classes, ConfigMaps and Secrets it reads), run as an
    /// instance of the VM by the member's name. Release restores the
    /// `vt-ready` snapshot unless the pool says `recycle: restart`. A
    /// member's hostDisks run on qcow2 overlays (`VMPreparation.overlayHostDisks`),
    /// so they are snapshotted too and the host files are never written.
    func vmPoolTemplate(_ p: VirtualTargetPool, resources: [Resource], byKey: [String: ResourceRow], support: [ResourceRow]) -> PoolTemplate? {
        guard let row = byKey[p.targetKind + "/" + p.targetName],
              let vm = resources.lazy.compactMap({ r in r.kind == p.targetKind ? r.vmDefinition : nil }).first(where: { $0.metadata.name == p.targetName })
        else { return nil }
        let objects = Set(vm.disks.flatMap { $0.source.objectKeys }).sorted().compactMap { byKey[$0]?.yaml }
        let spec = ([row.yaml] + support.map(\.yaml) + objects).joined(separator: "---\n")
        let o = row.options
        let owner = byKey["VirtualTargetPool/" + p.metadata.name]?.owner ?? row.owner
        let who = owner.map { "\($0.uid):\($0.gid):\($0.groups)" } ?? ""
        var member = DesiredInstance(namespace: p.metadata.namespace, name: "", target: p.targetName, machine: vm.machineType,
                                     restartPolicy: "OnFailure", ttlSeconds: nil, spec: spec, directory: row.directory, options: o,
                                     serialDevices: vm.serialConsole ? ["console"] : [], canBuses: [],
                                     hash: Self.fingerprint(spec + "\u{0}" + row.directory + "\u{0}\(o.lenient)\(o.allowHostPaths)\(o.allowExtraArgs)\u{0}"
                                                            + who + "\u{0}" + p.recycle.rawValue + "\u{0}" + (p.readiness.map { "\($0.device)\u{0}\($0.pattern)\u{0}\($0.timeoutSeconds)" } ?? "")))
        member.owner = owner
        member.labels = p.metadata.labels
        return PoolTemplate(pool: p, member: member, snapshots: p.recycle == .snapshot)
    }
}
