#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import InstanceContract
import Synchronization

/// Where a supervised session keeps its instance and reports on it.
public struct SupervisedInstance: Sendable {
    /// `<runtime>/ns-<namespace>/<name>`: the same sockets every time it starts.
    public var layout: InstanceLayout
    /// `status.json` in the supervisor's state directory for this instance.
    public var statusPath: String
    /// A pool member: once Ready, `savevm` into a scratch qcow2 so a release
    /// can `loadvm` back (where the board's profile allows snapshots).
    public var snapshot: Bool
    /// `vtarget start --paused`: QEMU is left in `-S` (no `cont`) and the status says Paused.
    public var startPaused = false

    /// The instance's state directory: the one `statusPath` is in.
    public var state: InstanceStateLayout {
        InstanceStateLayout(directory: statusPath.lastIndex(of: "/").map { String(statusPath[..<$0]) } ?? ".")
    }

    public init(layout: InstanceLayout, statusPath: String, snapshot: Bool = false) {
        self.layout = layout
        self.statusPath = statusPath
        self.snapshot = snapshot
    }
}

extension ShimStatus {
    /// Wall-clock seconds since 1970, as every status and row time is kept.
    public static var now: Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// The status in `path`; nil when there is none (not written yet) or it
    /// cannot be decoded.
    public static func read(_ path: String) -> ShimStatus? {
        FileManager.default.contents(atPath: path).flatMap(decode)
    }
}

/// Keeps the current status and replaces the file atomically on each change.
/// Several tasks update it (the session, QMP run-state events), so each
/// change and its write happen under one lock: no change is lost and the
/// file never goes back to an older status.
final class ShimStatusWriter: Sendable {
    let path: String
    private let current = Mutex(ShimStatus(phase: .starting))

    init(path: String) {
        self.path = path
        current.withLock { Self.write($0, to: path) }
    }

    func update(_ change: (inout ShimStatus) -> Void) {
        current.withLock {
            change(&$0)
            Self.write($0, to: path)
        }
    }

    private static func write(_ status: ShimStatus, to path: String) {
        guard let data = try? status.encoded() else { return }
        FileDescriptors.replaceFile(path, with: data)
    }
}
