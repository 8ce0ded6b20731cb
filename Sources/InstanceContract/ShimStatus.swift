#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a supervised `vtarget run` (the shim) says about its one instance,
/// in `status.json` ("InstanceStateLayout.statusFile"), which the supervisor
/// watches (inotify) and reads again after a restart of its own: it is how an
/// instance's life is known even while no supervisor runs. This type is the
/// file's format; reading and writing it is the runtime's.
public struct ShimStatus: Codable, Sendable, Equatable {
    /// Starting, Running, then Succeeded, Failed or Expired.
    public var phase: InstancePhase
    public var reason: InstanceReason?
    public var message: String?
    public var ready: Bool = false
    /// The guest is paused (QEMU's run state `paused`, after QMP `stop`):
    /// the phase stays Running, as a KubeVirt VMI's does, and the supervisor
    /// shows it as the status `Paused` and a `Paused` condition.
    public var paused: Bool?
    /// The `vt-ready` snapshot exists (pool members).
    public var snapshot: Bool?
    /// The shim's last release back to the pool (SIGUSR1): the supervisor
    /// waits for the next generation instead of talking QMP itself.
    public var release: ReleaseReport?
    public var qemuPID: Int32?
    /// Wall-clock seconds since 1970.
    public var startedAt: Double?
    public var readyAt: Double?
    public var finishedAt: Double?
    public var exitCode: Int32?
    public var signal: Int32?
    /// The last lines QEMU wrote on stderr, when it failed.
    public var stderrTail: [String]?
    public var directory: String?

    public init(phase: InstancePhase, reason: InstanceReason? = nil, message: String? = nil) {
        self.phase = phase
        self.reason = reason
        self.message = message
    }

    public static func succeeded(_ reason: InstanceReason, _ message: String) -> ShimStatus {
        ShimStatus(phase: .succeeded, reason: reason, message: message)
    }

    public static func failed(_ reason: InstanceReason, _ message: String) -> ShimStatus {
        ShimStatus(phase: .failed, reason: reason, message: message)
    }

    public var isFinished: Bool { finishedAt != nil }

    /// The last 20 non-empty lines.
    public static func tail(_ text: String) -> [String] {
        Array(text.split(separator: "\n", omittingEmptySubsequences: true).suffix(20).map(String.init))
    }

    public func encoded() throws -> Data { try JSONEncoder().encode(self) }

    /// nil for bytes that are not a status (a file caught half-written by a
    /// crash, or not written yet): the caller treats that as "no report".
    public static func decode(_ data: Data) -> ShimStatus? {
        try? JSONDecoder().decode(ShimStatus.self, from: data)
    }
}

/// What a shim did on the supervisor's "released to the pool" (SIGUSR1):
/// `stop`, serial hubs reset (clients, replay and pending output of the
/// previous claimer dropped), `loadvm vt-ready`, `cont`, in that order, so no
/// byte of the restored guest reaches the previous claimer.
public struct ReleaseReport: Codable, Sendable, Equatable {
    /// 1 for the first release of this shim, then +1 each.
    public var generation: Int
    /// False when `loadvm` failed: the supervisor restarts the member instead.
    public var restored: Bool
    public var message: String?

    public init(generation: Int, restored: Bool, message: String? = nil) {
        self.generation = generation
        self.restored = restored
        self.message = message
    }
}
