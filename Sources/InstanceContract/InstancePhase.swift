/// Where an instance is in its life, as the shim reports it and the
/// supervisor records it. The raw values are the wire and database spelling
/// (the contract's `status.phase`), so they never change.
public enum InstancePhase: String, Codable, Sendable, CaseIterable {
    case pending = "Pending"
    case starting = "Starting"
    case running = "Running"
    case terminating = "Terminating"
    case succeeded = "Succeeded"
    case failed = "Failed"
    case expired = "Expired"

    /// A shim is (or is about to be) behind it.
    public var isActive: Bool {
        switch self {
        case .pending, .starting, .running, .terminating: true
        case .succeeded, .failed, .expired: false
        }
    }

    public var isFinished: Bool { !isActive }
}

/// Why an instance is in its phase. An open set (a struct, not an enum): a
/// supervisor reading a status file or a row written by a newer vtarget keeps
/// a reason it does not know instead of failing to decode it.
public struct InstanceReason: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    // The shim's outcomes.
    public static let startFailed = InstanceReason("StartFailed")
    public static let qemuExited = InstanceReason("QEMUExited")
    public static let untilMatched = InstanceReason("UntilMatched")
    public static let commandSucceeded = InstanceReason("CommandSucceeded")
    public static let commandFailed = InstanceReason("CommandFailed")
    public static let testsPassed = InstanceReason("TestsPassed")
    public static let testsFailed = InstanceReason("TestsFailed")
    public static let timeout = InstanceReason("Timeout")
    public static let ttlExpired = InstanceReason("TTLExpired")
    public static let idleTTLExpired = InstanceReason("IdleTTLExpired")
    public static let readinessTimeout = InstanceReason("ReadinessTimeout")
    public static let stopped = InstanceReason("Stopped")
    public static let invalidSpec = InstanceReason("InvalidSpec")
    /// Someone removed the instance's runtime directory (its sockets with it).
    public static let runtimeDirectoryRemoved = InstanceReason("RuntimeDirectoryRemoved")
    // The supervisor's.
    public static let shimDied = InstanceReason("ShimDied")
}
