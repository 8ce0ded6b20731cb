import InstanceContract

/// The restart policy's answer for an instance that finished: pure, so every
/// row of the policy table is a unit test.
public enum RestartBackoff {
    public struct Decision: Equatable, Sendable {
        /// Seconds until the restart.
        public var delay: Double
        /// The backoff step the row keeps for the restart after this one.
        public var nextStep: Int
    }

    /// A run that lasted this long starts the backoff over.
    public static let resetAfter: Double = 60

    /// nil when the instance stays down: not wanted, expired, stopped by
    /// request, or its policy does not restart this outcome.
    public static func decide(policy: String, desired: String, phase: InstancePhase, reason: InstanceReason?,
                              startedAt: Double?, finishedAt: Double?, step: Int, base: Double, cap: Double) -> Decision? {
        guard desired == "running", phase != .expired, reason != .stopped else { return nil }
        switch policy {
        case "Always": break
        case "OnFailure": guard phase == .failed else { return nil }
        default: return nil
        }
        var step = step
        if let started = startedAt, let finished = finishedAt, finished - started >= resetAfter { step = 0 }
        // 2^step overflows nothing: the cap is reached long before.
        let delay = min(cap, base * Double(1 << min(step, 30)))
        return Decision(delay: delay, nextStep: step + 1)
    }
}
