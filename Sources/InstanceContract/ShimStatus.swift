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
    /// What a VM's qemu-guest-agent last said (nil: not a VM, or not asked yet).
    public var guestAgent: GuestAgentStatus?
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

/// The internal snapshot (savevm/loadvm) a pool member, board or VM, takes
/// once Ready and is restored to on release: one name, so the VM snapshot
/// verbs (contract section 6) can list it and keep clear of it.
public enum PoolSnapshot {
    public static let name = "vt-ready"
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

/// A VM's guest as its qemu-guest-agent reports it, asked at boot and every
/// few seconds by the shim: KubeVirt's AgentConnected condition and the
/// VMI's `status.interfaces` come from here.
public struct GuestAgentStatus: Codable, Sendable, Equatable {
    public var connected: Bool
    /// When `connected` last changed (wall-clock seconds).
    public var since: Double
    public var hostname: String?
    /// `guest-get-osinfo`'s pretty-name.
    public var osName: String?
    public var interfaces: [GuestInterface]

    public init(connected: Bool, since: Double, hostname: String? = nil, osName: String? = nil, interfaces: [GuestInterface] = []) {
        self.connected = connected
        self.since = since
        self.hostname = hostname
        self.osName = osName
        self.interfaces = interfaces
    }
}

/// One guest network interface: its name in the guest, MAC and addresses (CIDR-less).
public struct GuestInterface: Codable, Sendable, Equatable {
    public var name: String
    public var mac: String?
    public var ipAddresses: [String]

    public init(name: String, mac: String?, ipAddresses: [String]) {
        self.name = name
        self.mac = mac
        self.ipAddresses = ipAddresses
    }
}
