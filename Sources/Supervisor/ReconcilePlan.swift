/// What a reconcile does to one namespace, worked out from what runs and what
/// the resources want, with no I/O: the supervisor then carries it out in
/// order (remove, restart, create).
public struct ReconcilePlan: Equatable, Sendable {
    /// Instances whose resource (or pool) is gone.
    public var remove: [String] = []
    /// Instances whose spec changed.
    public var restart: [String] = []
    /// Instances wanted and not there.
    public var create: [String] = []

    public struct Current: Sendable {
        public var name: String
        public var pool: String?
        public var specHash: String
        public init(name: String, pool: String?, specHash: String) {
            self.name = name
            self.pool = pool
            self.specHash = specHash
        }
    }

    public struct Wanted: Sendable {
        public var name: String
        public var specHash: String
        public init(name: String, specHash: String) {
            self.name = name
            self.specHash = specHash
        }
    }

    public init(remove: [String] = [], restart: [String] = [], create: [String] = []) {
        self.remove = remove
        self.restart = restart
        self.create = create
    }

    /// Pool members are judged by their pool (the pool's own top-up replaces
    /// stale members); every other instance by its name and spec hash.
    public static func diff(current: [Current], wanted: [Wanted], pools: Set<String>) -> ReconcilePlan {
        var plan = ReconcilePlan()
        let wantedNames = Set(wanted.map(\.name))
        var standalone: [String: String] = [:]
        for c in current {
            if let pool = c.pool {
                if !pools.contains(pool) { plan.remove.append(c.name) }
            } else if !wantedNames.contains(c.name) {
                plan.remove.append(c.name)
            } else {
                standalone[c.name] = c.specHash
            }
        }
        for w in wanted {
            if let hash = standalone[w.name] {
                if hash != w.specHash { plan.restart.append(w.name) }
            } else if !current.contains(where: { $0.name == w.name && $0.pool == nil }) {
                plan.create.append(w.name)
            }
        }
        return plan
    }
}
