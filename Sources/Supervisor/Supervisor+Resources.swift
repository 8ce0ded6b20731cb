import ControlAPI
import InstanceContract
import ResourceKit
import HostOS
import TargetRuntime
import TargetSpec
import VMSpec
import YAMLTree

extension Supervisor {
    // MARK: - Resources

    /// Stores the resources (one transaction) and brings instances in line:
    /// new ones start, changed ones restart, unchanged ones are left alone.
    /// `owner` is who asked (from the socket): what its instances' sidecars run as.
    /// Cluster-scoped kinds are kept once, in no namespace, whatever
    /// namespace the request gave them (kubectl's `-n` does not apply to them).
    public func apply(_ request: ApplyRequest, owner: ProcessOwner? = nil) async throws(SupervisorError) -> [ObjectResult] {
        var request = request
        for i in request.resources.indices {
            request.resources[i].namespace = KindRegistry.builtIn.storedNamespace(kind: request.resources[i].kind, request.resources[i].namespace)
        }
        let locks = try namespacesToLock(request.resources.map { ($0.kind, $0.namespace) })
        return try await exclusively(locks) { () async throws(SupervisorError) -> [ObjectResult] in
            try await applyLocked(request, owner: owner)
        }
    }

    /// The locks a change of these objects takes. A cluster-scoped object is
    /// read by every namespace's VMs: changing one takes every namespace's
    /// lock. A VM takes the cluster scope's too, so that a cluster type
    /// cannot be deleted between the VM's check and its commit.
    private func namespacesToLock(_ objects: [(kind: String, namespace: String)]) throws(SupervisorError) -> [String] {
        var locks = objects.map(\.namespace)
        if objects.contains(where: { $0.namespace == KindRegistry.clusterScope }) {
            do { locks += try store.resources(namespace: nil).map(\.namespace) } catch { throw .storage(error) }
        }
        if objects.contains(where: { Self.vmKinds.contains($0.kind) }) { locks.append(KindRegistry.clusterScope) }
        return locks
    }

    private func applyLocked(_ request: ApplyRequest, owner: ProcessOwner?) async throws(SupervisorError) -> [ObjectResult] {
        try Self.checkIdentities(request.resources)
        let scope = KindRegistry.clusterScope
        let now = ShimStatus.now
        var results: [ObjectResult] = []
        var rows: [ResourceRow] = []
        var namespaces: [String] = []
        do {
            for r in request.resources {
                let existing = try store.read { try ResourceRow.fetchOne($0, key: ["kind": r.kind, "namespace": r.namespace, "name": r.name]) }
                var row = ResourceRow(kind: r.kind, namespace: r.namespace, name: r.name, yaml: r.yaml, directory: r.directory,
                                      options: r.options, createdAt: existing?.createdAt ?? now, updatedAt: now, owner: owner)
                let action: String
                // Another user applying the same text takes it over: its sidecars now run as them.
                if let existing, existing.yaml == r.yaml, existing.directory == r.directory, existing.options == r.options,
                   existing.owner == owner {
                    action = "unchanged"
                    row.updatedAt = existing.updatedAt
                } else {
                    action = existing == nil ? "created" : "configured"
                }
                rows.append(row)
                results.append(ObjectResult(kind: r.kind, namespace: r.namespace, name: r.name, action: action))
                if !namespaces.contains(r.namespace) { namespaces.append(r.namespace) }
            }
        } catch { throw .storage(error) }
        // A changed cluster-scoped object changes the VMs of every namespace
        // that uses it (their spec holds it): check and reconcile them all.
        if zip(rows, results).contains(where: { $0.namespace == scope && $1.action != "unchanged" }) {
            do { namespaces += try store.resources(namespace: nil).map(\.namespace) } catch { throw .storage(error) }
            var seen = Set<String>()
            namespaces = namespaces.filter { seen.insert($0).inserted }
        }
        // Check the namespaces as they would be before storing anything.
        var plans: [String: DesiredState] = [:]
        for ns in namespaces {
            var all: [ResourceRow]
            do { all = try store.resources(namespace: ns) } catch { throw .storage(error) }
            for row in rows where row.namespace == ns || row.namespace == scope {
                all.removeAll { $0.kind == row.kind && $0.namespace == row.namespace && $0.name == row.name }
                all.append(row)
            }
            plans[ns] = try desiredInstances(all)
        }
        do {
            try store.write { db in
                for (row, result) in zip(rows, results) where result.action != "unchanged" { try row.save(db) }
            }
        } catch { throw .storage(error) }
        for ns in namespaces where ns != scope { try await reconcile(namespace: ns, desired: plans[ns] ?? DesiredState()) }
        return results
    }

    /// A cluster-scoped object is found from any namespace.
    public func delete(kind: String, namespace: String, name: String) async throws(SupervisorError) -> ObjectResult {
        let namespace = KindRegistry.builtIn.storedNamespace(kind: kind, namespace)
        let locks = try namespacesToLock([(kind, namespace)])
        return try await exclusively(locks) { () async throws(SupervisorError) -> ObjectResult in
            try await deleteLocked(kind: kind, namespace: namespace, name: name)
        }
    }

    private func deleteLocked(kind: String, namespace: String, name: String) async throws(SupervisorError) -> ObjectResult {
        let row: ResourceRow?
        do { row = try store.read { try ResourceRow.fetchOne($0, key: ["kind": kind, "namespace": namespace, "name": name]) } } catch { throw .storage(error) }
        guard row != nil else {
            throw .notFound(namespace == KindRegistry.clusterScope ? "\(kind) \"\(name)\"" : "\(kind) \"\(name)\" in namespace \(namespace)")
        }
        if Self.vmSupportKinds.contains(kind) {
            let users: [String]
            do {
                let candidates = try store.resources(namespace: namespace == KindRegistry.clusterScope ? nil : namespace)
                users = vmsUsing(VMTypeKey(kind: kind, name: name), among: candidates)
            } catch { throw .storage(error) }
            if !users.isEmpty {
                throw SupervisorError(409, "\(kind) \"\(name)\" is used by \(users.joined(separator: ", ")): delete \(users.count == 1 ? "it" : "them") "
                                      + "first, or apply \(users.count == 1 ? "it" : "them") with another \(Self.typeField(kind)); "
                                      + "vtarget reads it again at each start of \(users.count == 1 ? "that VM" : "those VMs")")
            }
        }
        let rest: [ResourceRow]
        do { rest = try store.resources(namespace: namespace).filter { !($0.kind == kind && $0.name == name) } } catch { throw .storage(error) }
        if Self.volumeKinds.contains(kind) {
            let users = volumeUsers(among: rest)[name] ?? []
            if !users.isEmpty {
                throw SupervisorError(409, "\(kind) \"\(name)\" is used by \(users.joined(separator: ", ")): delete \(users.count == 1 ? "it" : "them") "
                                      + "first (its volume is deleted with the \(kind == "DataVolume" ? "DataVolume" : "claim"), as a cluster's is)")
            }
        }
        let plan: DesiredState
        do { plan = try desiredInstances(rest) } catch {
            throw SupervisorError(409, "\(kind) \"\(name)\" is still needed: \(error.message)")
        }
        do {
            _ = try store.write { try ResourceRow.deleteOne($0, key: ["kind": kind, "namespace": namespace, "name": name]) }
        } catch { throw .storage(error) }
        if namespace != KindRegistry.clusterScope { try await reconcile(namespace: namespace, desired: plan) }
        if let row {
            for path in removeVolumes(of: row, rest: rest) { log("\(kind) \(namespace)/\(name): its volume \(path) deleted with it") }
        }
        return ObjectResult(kind: kind, namespace: namespace, name: name, action: "deleted")
    }

    /// The stored VMs (`Kind namespace/name`) whose instancetype, preference
    /// or MachineClass is `type`. A namespaced type is only seen by VMs of its
    /// namespace: the caller passes that namespace's rows alone.
    func vmsUsing(_ type: VMTypeKey, among rows: [ResourceRow]) -> [String] {
        rows.filter { $0.kind == "VirtualMachine" || $0.kind == "Machine" }.compactMap { r -> String? in
            let decoder = ResourceDecoder(catalog: catalog, options: DecodeOptions(
                strict: false, allowHostPaths: r.options.allowHostPaths, allowExtraArgs: r.options.allowExtraArgs))
            let decoded = try? decoder.decode([SourceFile(path: Self.sourceLabel(r), directory: r.directory, bytes: Array(r.yaml.utf8))],
                                              resolvingVMs: false).resources
            let uses = (decoded ?? []).contains { resource in
                switch resource {
                case .virtualMachine(let vm): return vm.typeKeys.contains(type)
                case .machine(let m): return m.classKey == type
                default: return false
                }
            }
            return uses ? "\(r.kind) \(r.namespace)/\(r.name)" : nil
        }
    }

    /// The VM field that names a type of this kind, for messages.
    static func typeField(_ kind: String) -> String {
        switch kind {
        case "MachineClass": return "spec.machineClass"
        case "VirtualMachinePreference", "VirtualMachineClusterPreference": return "spec.preference"
        default: return "spec.instancetype"
        }
    }

    public func resources(kind: String?, namespace: String?) throws(SupervisorError) -> [ResourceInfo] {
        do {
            // A cluster-scoped kind is listed whatever the namespace asked.
            let scoped = kind.map { KindRegistry.builtIn.storedNamespace(kind: $0, "-") == KindRegistry.clusterScope } ?? false
            return try store.resources(namespace: scoped ? nil : namespace, kind: kind).map { r in
                ResourceInfo(kind: r.kind, namespace: r.namespace, name: r.name, yaml: r.yaml, directory: r.directory,
                             createdAt: r.createdAt, updatedAt: r.updatedAt, summary: summary(r))
            }
        } catch { throw .storage(error) }
    }

    /// The columns `get` shows beside the name, as the kind registry says.
    func summary(_ r: ResourceRow) -> [String: String] {
        guard let root = try? YAMLParser.parse(r.yaml, file: r.kind).first?.root else { return [:] }
        return KindRegistry.builtIn.summary(of: r.kind, root: root)
    }

    /// Starts what is new, restarts what changed, stops and forgets what is
    /// gone. Called with the namespace's lock held. A listing that fails is
    /// an error, never "no instances" (which would start every one again).
    func reconcile(namespace: String, desired state: DesiredState) async throws(SupervisorError) {
        let current: [InstanceRow]
        do { current = try store.instances(namespace: namespace) } catch { throw .storage(error) }
        let plan = ReconcilePlan.diff(
            current: current.map { .init(name: $0.name, pool: $0.pool, specHash: $0.specHash) },
            wanted: state.instances.map { .init(name: $0.name, specHash: $0.hash) },
            pools: Set(state.pools.map(\.pool.metadata.name)))
        for row in current where plan.remove.contains(row.name) { await removeInstance(row) }
        poolTemplates = poolTemplates.filter { $0.key.hasPrefix(namespace + "/") == false }
        for p in state.pools { poolTemplates[namespace + "/" + p.pool.metadata.name] = p }
        for p in state.pools { try await topUp(namespace: namespace, pool: p.pool.metadata.name) }
        for d in state.instances {
            let now = ShimStatus.now
            if plan.restart.contains(d.name), let row = current.first(where: { $0.name == d.name && $0.pool == nil }) {
                await restart(row.key, message: "the spec changed; restarting with the new one", spec: d.spec,
                              event: ("SpecChanged", "spec changed (\(row.specHash) → \(d.hash))")) { fresh in
                    fresh.update(from: d)
                    fresh.backoffStep = 0
                    fresh.expiresAt = d.ttlSeconds.map { now + $0 }
                }
            } else if plan.create.contains(d.name), !d.onRequest {
                await create(d, pool: nil)
            }
        }
    }

    /// A new instance row (Pending), then its start.
    func create(_ d: DesiredInstance, pool: String?) async {
        let now = ShimStatus.now
        var row = InstanceRow(namespace: d.namespace, name: d.name, uid: "", target: d.target, machine: d.machine,
                              restartPolicy: d.restartPolicy, specHash: d.hash, specDirectory: d.directory,
                              options: d.options, serialDevices: d.serialDevices, ttlSeconds: d.ttlSeconds,
                              desired: "running", phase: .pending, ready: false, createdAt: now,
                              expiresAt: d.ttlSeconds.map { now + $0 }, stderrTail: [], restarts: 0, backoffStep: 0)
        row.update(from: d)
        row.pool = pool
        commit(row, [event("Normal", row, "Created", (pool.map { "member of pool \($0): " } ?? "") + "instance of \(d.target) on \(d.machine)")], spec: d.spec, inserting: true)
        await startInstance(row.key)
    }
}
