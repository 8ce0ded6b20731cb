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
        do { return try store.instances(namespace: namespace).map(info) } catch { throw .storage(error) }
    }

    public func describe(namespace: String, name: String) throws(SupervisorError) -> InstanceDescription {
        let row: InstanceRow?
        do { row = try store.instance(namespace, name) } catch { throw .storage(error) }
        guard let row else { throw .notFound("instance \"\(name)\" in namespace \(namespace)") }
        let events: [EventInfo]
        do { events = try store.events(namespace: namespace, name: name, limit: 50).map(\.info) } catch { throw .storage(error) }
        return InstanceDescription(instance: info(row), events: events)
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

    /// `vtarget start`: wanted again, with a fresh TTL and backoff.
    public func start(namespace: String, name: String) async throws(SupervisorError) -> ObjectResult {
        try await exclusively(namespace) { () async throws(SupervisorError) -> ObjectResult in
            try await startLocked(namespace: namespace, name: name)
        }
    }

    private func startLocked(namespace: String, name: String) async throws(SupervisorError) -> ObjectResult {
        var row = try instanceRow(namespace, name)
        let result = ObjectResult(kind: "VirtualTargetInstance", namespace: namespace, name: name, action: row.isActive ? "unchanged" : "started")
        guard !row.isActive || row.desired != "running" else { return result }
        restartTimers.removeValue(forKey: row.key)?.cancel()
        row.desired = "running"
        row.backoffStep = 0
        row.nextRestartAt = nil
        if let ttl = row.ttlSeconds, (row.expiresAt ?? 0) <= ShimStatus.now { row.expiresAt = ShimStatus.now + ttl }
        commit(row, event("Normal", row, "StartRequested", "started by request"))
        if !row.isActive || row.phase == .pending { await startInstance(row.key) }
        return ObjectResult(kind: "VirtualTargetInstance", namespace: namespace, name: name, action: "started")
    }

    /// `vtarget stop`: stays stopped (no restart policy) until started again.
    public func stop(namespace: String, name: String) async throws(SupervisorError) -> ObjectResult {
        try await exclusively(namespace) { () async throws(SupervisorError) -> ObjectResult in
            try await stopLocked(namespace: namespace, name: name)
        }
    }

    private func stopLocked(namespace: String, name: String) async throws(SupervisorError) -> ObjectResult {
        var row = try instanceRow(namespace, name)
        restartTimers.removeValue(forKey: row.key)?.cancel()
        row.desired = "stopped"
        row.nextRestartAt = nil
        commit(row, event("Normal", row, "StopRequested", "stopped by request"))
        await stopShim(row.key, message: "stopped by request")
        return ObjectResult(kind: "VirtualTargetInstance", namespace: namespace, name: name, action: "stopped")
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
