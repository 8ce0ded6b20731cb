#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Sandbox

/// Where a supervised session keeps its instance and reports on it.
public struct SupervisedInstance: Sendable {
    /// `<runtime>/ns-<namespace>/<name>`: the same sockets every time it starts.
    public var directory: String
    /// `status.json` in the supervisor's state directory for this instance.
    public var statusPath: String
    /// A pool member: once Ready, `savevm` into a scratch qcow2 so a release
    /// can `loadvm` back (where the board's profile allows snapshots).
    public var snapshot: Bool

    public init(directory: String, statusPath: String, snapshot: Bool = false) {
        self.directory = directory
        self.statusPath = statusPath
        self.snapshot = snapshot
    }
}

/// What a supervised `vtarget run` says about its one instance, in a file the
/// supervisor watches (inotify) and reads again after a restart of its own:
/// it is how an instance's life is known even while no supervisor runs.
public struct ShimStatus: Codable, Sendable, Equatable {
    /// Starting, Running, then Succeeded, Failed or Expired.
    public var phase: String
    public var reason: String?
    public var message: String?
    public var ready: Bool = false
    /// The `vt-ready` snapshot exists (pool members).
    public var snapshot: Bool?
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

    public init(phase: String, reason: String? = nil, message: String? = nil) {
        self.phase = phase
        self.reason = reason
        self.message = message
    }

    public static func succeeded(_ reason: String, _ message: String) -> ShimStatus {
        ShimStatus(phase: "Succeeded", reason: reason, message: message)
    }

    public static func failed(_ reason: String, _ message: String) -> ShimStatus {
        ShimStatus(phase: "Failed", reason: reason, message: message)
    }

    public mutating func exit(_ status: ExitStatus) {
        switch status {
        case .exited(let c): exitCode = c
        case .signalled(let s): signal = s
        }
    }

    public var isFinished: Bool { finishedAt != nil }

    public static var now: Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// The last 20 non-empty lines.
    public static func tail(_ text: String) -> [String] {
        Array(text.split(separator: "\n", omittingEmptySubsequences: true).suffix(20).map(String.init))
    }

    public static func read(_ path: String) -> ShimStatus? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(ShimStatus.self, from: data)
    }
}

/// Keeps the current status and replaces the file atomically on each change.
final class ShimStatusWriter: @unchecked Sendable {
    let path: String
    private var current = ShimStatus(phase: "Starting")

    init(path: String) {
        self.path = path
        write()
    }

    func update(_ change: (inout ShimStatus) -> Void) {
        change(&current)
        write()
    }

    private func write() {
        guard let data = try? JSONEncoder().encode(current) else { return }
        replaceFile(path, with: data)
    }
}
