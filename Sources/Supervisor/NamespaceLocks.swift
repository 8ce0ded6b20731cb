/// One mutating operation at a time per namespace, across the awaits inside
/// it. The actor alone does not give that: while `startInstance` awaits a
/// spawn or `removeInstance` awaits a shim's end, another request enters the
/// actor and acts on what it read before (a second shim for one instance, a
/// deleted row written back, a pool topped up twice past maxInstances).
/// Reads (get, describe, events) take no lock. Waiters are served in order,
/// and a lock is handed to the next waiter, never left free in between.
struct NamespaceLocks {
    private var held: Set<String> = []
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]

    /// Takes the lock when free; false when the caller must `enqueue`.
    mutating func tryTake(_ namespace: String) -> Bool {
        held.insert(namespace).inserted
    }

    mutating func enqueue(_ namespace: String, _ waiter: CheckedContinuation<Void, Never>) {
        waiting[namespace, default: []].append(waiter)
    }

    /// The next waiter, who now holds the lock; nil when it is free again.
    mutating func release(_ namespace: String) -> CheckedContinuation<Void, Never>? {
        if var queue = waiting[namespace], !queue.isEmpty {
            let next = queue.removeFirst()
            waiting[namespace] = queue.isEmpty ? nil : queue
            return next
        }
        held.remove(namespace)
        return nil
    }
}

extension Supervisor {
    /// Runs `body` holding the locks of `namespaces`, taken in sorted order so
    /// two multi-namespace applies can never wait for each other.
    func exclusively<T, E: Error>(_ namespaces: [String], _ body: () async throws(E) -> T) async throws(E) -> T {
        let sorted = Array(Set(namespaces)).sorted()
        for ns in sorted where !locks.tryTake(ns) {
            await withCheckedContinuation { locks.enqueue(ns, $0) }
        }
        defer { for ns in sorted.reversed() { locks.release(ns)?.resume() } }
        return try await body()
    }

    func exclusively<T, E: Error>(_ namespace: String, _ body: () async throws(E) -> T) async throws(E) -> T {
        try await exclusively([namespace], body)
    }
}
