/// A pool's sums, apart from the actor that acts on them.
public enum PoolArithmetic {
    public struct Member: Sendable {
        public var name: String
        public var claimed: Bool
        /// Running, starting, or waiting for a restart: counts towards minReady.
        public var warm: Bool
        public var specHash: String
        public init(name: String, claimed: Bool, warm: Bool, specHash: String) {
            self.name = name
            self.claimed = claimed
            self.warm = warm
            self.specHash = specHash
        }
    }

    public struct TopUp: Equatable, Sendable {
        /// Unclaimed members of an older spec: replaced. Claimed ones stay
        /// until released, so a claimer never loses its target.
        public var remove: [String]
        /// New members to start.
        public var add: Int
    }

    /// Enough new members for `minReady` unclaimed warm ones, never more than
    /// `maxInstances` members in all (claimed ones included).
    public static func topUp(members: [Member], specHash: String, minReady: Int, maxInstances: Int) -> TopUp {
        let stale = members.filter { !$0.claimed && $0.specHash != specHash }.map(\.name)
        let kept = members.filter { !stale.contains($0.name) }
        let warm = kept.filter { !$0.claimed && $0.warm }.count
        let add = max(0, min(minReady - warm, maxInstances - kept.count))
        return TopUp(remove: stale, add: add)
    }
}
