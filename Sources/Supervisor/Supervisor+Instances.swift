#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import InstanceContract
import HostOS
import TargetRuntime

extension Supervisor {
    // MARK: - Instances

    public func instances(namespace: String?) throws(SupervisorError) -> [InstanceInfo] {
        let rows: [InstanceRow]
        do { rows = try store.instances(namespace: namespace) } catch { throw .storage(error) }
        // One walk of the bundles for the whole listing, not a directory per instance.
        var kept: [String: [String]] = [:]
        for b in bundles(namespace: namespace, name: nil) { kept[b.namespace + "/" + b.name, default: []].append(b.path) }
        return rows.map { row in
            var i = info(row)
            i.bundles = kept[row.key]
            return i
        }
    }

    /// The kept bundles of recorded instances (`record: true`), those of
    /// deleted instances too, oldest first.
    public func bundles(namespace: String?, name: String?) -> [BundleInfo] {
        BundleShelf.all(root: paths.bundlesDirectory, namespace: namespace, name: name)
    }

    public func describe(namespace: String, name: String) throws(SupervisorError) -> InstanceDescription {
        let row: InstanceRow?
        do { row = try store.instance(namespace, name) } catch { throw .storage(error) }
        guard let row else { throw .notFound("instance \"\(name)\" in namespace \(namespace)") }
        let events: [EventInfo]
        do { events = try store.events(namespace: namespace, name: name, limit: 50).map(\.info) } catch { throw .storage(error) }
        var i = info(row)
        let kept = bundles(namespace: namespace, name: name).map(\.path)
        i.bundles = kept.isEmpty ? nil : kept
        return InstanceDescription(instance: i, events: events)
    }

    public func events(namespace: String?, after id: Int64) throws(SupervisorError) -> [EventInfo] {
        do { return try store.events(namespace: namespace, after: id).map(\.info) } catch { throw .storage(error) }
    }

    /// New events as they are recorded, until the stream is dropped.
    public func subscribe() -> (Int, AsyncStream<EventInfo>) {
        let (stream, sink) = AsyncStream<EventInfo>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        nextSubscriber += 1
        subscribers[nextSubscriber] = sink
        return (nextSubscriber, stream)
    }

    public func unsubscribe(_ id: Int) {
        subscribers.removeValue(forKey: id)?.finish()
    }

    public func status() throws(SupervisorError) -> DaemonStatus {
        let all: [InstanceRow]
        do { all = try store.instances() } catch { throw .storage(error) }
        return DaemonStatus(pid: getpid(), version: "0.1.0", startedAt: startedAt, socket: paths.socket,
                            stateDirectory: paths.stateDirectory, instances: all.count,
                            running: all.filter { $0.phase == .running }.count, adopted: adopted)
    }

    /// `vtarget start`: wanted again, with a fresh TTL and backoff. A VM
    /// starts as virtctl's start does (see `VMRunStrategyPatch`); `paused`
    /// starts its CPUs stopped (QEMU stays in `-S`), shown as Paused.
    public func start(namespace: String, name: String, paused: Bool = false) async throws(SupervisorError) -> ObjectResult {
        try await exclusively(namespace) { () async throws(SupervisorError) -> ObjectResult in
            if let vm = try storedVM(namespace, name) { return try await startVMLocked(vm, paused: paused) }
            if paused { pausedStarts.insert(namespace + "/" + name) }
            defer { pausedStarts.remove(namespace + "/" + name) }
            return try await startLocked(namespace: namespace, name: name)
        }
    }

    private func startLocked(namespace: String, name: String, kind: String = "VirtualTargetInstance") async throws(SupervisorError) -> ObjectResult {
        var row = try instanceRow(namespace, name)
        let result = ObjectResult(kind: kind, namespace: namespace, name: name, action: row.isActive ? "unchanged" : "started")
        guard !row.isActive || row.desired != "running" else { return result }
        restartTimers.removeValue(forKey: row.key)?.cancel()
        row.desired = "running"
        row.backoffStep = 0
        row.nextRestartAt = nil
        if let ttl = row.ttlSeconds, (row.expiresAt ?? 0) <= ShimStatus.now { row.expiresAt = ShimStatus.now + ttl }
        commit(row, event("Normal", row, "StartRequested", "started by request"))
        if !row.isActive || row.phase == .pending { await startInstance(row.key) }
        return ObjectResult(kind: kind, namespace: namespace, name: name, action: "started")
    }

    /// `vtarget stop`: stays stopped (no restart policy) until started again;
    /// a VM stops as virtctl's stop does, its guest first given the ACPI
    /// power button and `gracePeriod` (else its terminationGracePeriodSeconds)
    /// unless `force`.
    /// A VM's grace period (up to KubeVirt's 180 s for a guest that ignores the
    /// power button) is waited out between two holds of the namespace's lock,
    /// not under it: every other verb in the namespace would wait as long.
    public func stop(namespace: String, name: String, force: Bool = false, gracePeriod: Double? = nil) async throws(SupervisorError) -> ObjectResult {
        let pressed = try await exclusively(namespace) { () async throws(SupervisorError) -> PowerButton? in
            guard let vm = try storedVM(namespace, name) else { return nil }
            return try await pressPowerButtonLocked(vm, force: force, gracePeriod: gracePeriod)
        }
        let how = await pressed?.waitForPowerOff()
        return try await exclusively(namespace) { () async throws(SupervisorError) -> ObjectResult in
            if let vm = try storedVM(namespace, name) { return try await stopVMLocked(vm, pressed: pressed, how: how) }
            return try await stopLocked(namespace: namespace, name: name)
        }
    }

    private func stopLocked(namespace: String, name: String, kind: String = "VirtualTargetInstance") async throws(SupervisorError) -> ObjectResult {
        var row = try instanceRow(namespace, name)
        restartTimers.removeValue(forKey: row.key)?.cancel()
        row.desired = "stopped"
        row.nextRestartAt = nil
        commit(row, event("Normal", row, "StopRequested", "stopped by request"))
        await stopShim(row.key, message: "stopped by request")
        return ObjectResult(kind: kind, namespace: namespace, name: name, action: "stopped")
    }

    // MARK: - VMs

    /// A stored VM of that name, with its namespace's resources (nil: not a VM).
    struct VMTarget {
        var row: ResourceRow
        var vm: StoredVM
        var namespaceRows: [ResourceRow]
    }

    private func storedVM(_ namespace: String, _ name: String) throws(SupervisorError) -> VMTarget? {
        let rows: [ResourceRow]
        do { rows = try store.resources(namespace: namespace) } catch { throw .storage(error) }
        guard let row = rows.first(where: { $0.name == name && Self.vmKinds.contains($0.kind) }) else { return nil }
        guard let vm = try desiredInstances(rows).vms[name] else { return nil }
        return VMTarget(row: row, vm: vm, namespaceRows: rows)
    }

    static let vmKinds: Set<String> = ["VirtualMachine", "VirtualMachineInstance", "Machine"]

    private func startVMLocked(_ t: VMTarget, paused: Bool) async throws(SupervisorError) -> ObjectResult {
        let (ns, name) = (t.row.namespace, t.row.name)
        let current: InstanceRow?
        do { current = try store.instance(ns, name) } catch { throw .storage(error) }
        let active = current.map { $0.isActive && $0.desired == "running" } ?? false
        let decision = VMRunStrategyPatch.start(kind: t.row.kind, strategy: t.vm.runStrategy, active: active,
                                                failed: current?.phase == .failed && current?.nextRestartAt != nil)
        let key = ns + "/" + name
        if paused { pausedStarts.insert(key) }
        defer { pausedStarts.remove(key) }
        switch decision {
        case .refuse(let why): throw SupervisorError(409, "virtualmachine \"\(name)\": \(why)")
        case .patch(let running):
            try await patchRunStrategy(t, running: running)
        case .instance:
            if current != nil { return try await startLocked(namespace: ns, name: name, kind: t.row.kind) }
            // A Manual VM's first start: its instance is made now.
            guard let d = try desiredInstances(t.namespaceRows).instances.first(where: { $0.name == name }) else {
                throw SupervisorError(409, "virtualmachine \"\(name)\" has no instance to start")
            }
            await create(d, pool: nil)
        }
        return ObjectResult(kind: t.row.kind, namespace: ns, name: name, action: "started")
    }

    /// The first half of a VM's stop: refused as virtctl refuses, else the
    /// instance is wanted stopped (a guest that powers off is not restarted)
    /// and the power button pressed. Nil when no instance runs.
    private func pressPowerButtonLocked(_ t: VMTarget, force: Bool, gracePeriod: Double?) async throws(SupervisorError) -> PowerButton? {
        let (ns, name) = (t.row.namespace, t.row.name)
        let current: InstanceRow?
        do { current = try store.instance(ns, name) } catch { throw .storage(error) }
        let active = current.map { $0.isActive && $0.desired == "running" } ?? false
        if case .refuse(let why) = VMRunStrategyPatch.stop(kind: t.row.kind, strategy: t.vm.runStrategy, active: active) {
            throw SupervisorError(409, "virtualmachine \"\(name)\": \(why)")
        }
        guard var row = current, active else { return nil }
        restartTimers.removeValue(forKey: row.key)?.cancel()
        row.desired = "stopped"
        row.nextRestartAt = nil
        commit(row)
        let grace = gracePeriod ?? t.vm.terminationGracePeriodSeconds.map(Double.init) ?? Self.defaultVMGracePeriod
        return await pressPowerButton(row.key, uid: row.uid, force: force, grace: grace)
    }

    /// The second half, after the guest powered off or its grace ran out: the
    /// runStrategy patched or the instance stopped, unless somebody started it
    /// again meanwhile (then that start stands and this stop says so).
    private func stopVMLocked(_ t: VMTarget, pressed: PowerButton?, how: String?) async throws(SupervisorError) -> ObjectResult {
        let (ns, name) = (t.row.namespace, t.row.name)
        let current: InstanceRow?
        do { current = try store.instance(ns, name) } catch { throw .storage(error) }
        if let pressed, let row = current, row.uid != pressed.uid || row.desired != "stopped" {
            throw SupervisorError(409, "virtualmachine \"\(name)\" was started again while it was powering off; it was not stopped")
        }
        if let how, let r = current { commit(r, event("Normal", r, "StopRequested", "stopped by request: \(how)")) }
        let active = current.map { $0.isActive && $0.desired == "running" } ?? false
        switch VMRunStrategyPatch.stop(kind: t.row.kind, strategy: t.vm.runStrategy, active: active || pressed != nil) {
        case .refuse(let why): throw SupervisorError(409, "virtualmachine \"\(name)\": \(why)")
        case .patch(let running): try await patchRunStrategy(t, running: running)
        case .instance: return try await stopLocked(namespace: ns, name: name, kind: t.row.kind)
        }
        return ObjectResult(kind: t.row.kind, namespace: ns, name: name, action: "stopped")
    }

    /// Stores the VM with its new runStrategy and brings the namespace in
    /// line: its instance is made (Always) or removed (Halted).
    private func patchRunStrategy(_ t: VMTarget, running: Bool) async throws(SupervisorError) {
        guard let yaml = VMRunStrategyPatch.patched(t.row.yaml, running: running) else {
            throw SupervisorError(500, "cannot edit the stored \(t.row.kind) \(t.row.name)")
        }
        var row = t.row
        row.yaml = yaml
        row.updatedAt = ShimStatus.now
        var rows = t.namespaceRows
        rows.removeAll { $0.kind == row.kind && $0.name == row.name }
        rows.append(row)
        let state = try desiredInstances(rows)
        do { try store.write { try row.save($0) } } catch { throw .storage(error) }
        try await reconcile(namespace: row.namespace, desired: state)
    }

    /// Stops every instance (for `daemon stop --stop-instances`).
    public func stopAll() async throws(SupervisorError) {
        let rows: [InstanceRow]
        do { rows = try store.instances() } catch { throw .storage(error) }
        for row in rows where row.isActive {
            do { _ = try await stop(namespace: row.namespace, name: row.name) } catch where error.status == 404 {
                // Deleted meanwhile: nothing left to stop.
            }
        }
    }
}
