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

/// `diff -u` (GNU diffutils) on two texts: the real tool's output, not a
/// hand-written one.
public struct UnifiedDiff: Sendable {
    public var executable: String
    public var timeoutSeconds: Double

    public init(executable: String = "/usr/bin/diff", timeoutSeconds: Double = 30) {
        self.executable = executable
        self.timeoutSeconds = timeoutSeconds
    }

    /// The unified diff of `object`'s two sides; empty when they are equal.
    public func run(_ object: ObjectDiff) async throws(SyncError) -> String {
        var template = Array((ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") .utf8CString)
        let suffix = Array("/vtarget-diff-XXXXXX".utf8CString)
        template.removeLast()
        template += suffix
        guard let made = mkdtemp(&template) else {
            throw SyncError(.diffTool, "cannot make a temporary directory: \(String(cString: strerror(errno)))")
        }
        let dir = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (a, b) = (dir + "/live", dir + "/merged")
        do {
            try Data(object.old.utf8).write(to: URL(fileURLWithPath: a))
            try Data(object.new.utf8).write(to: URL(fileURLWithPath: b))
        } catch {
            throw SyncError(.diffTool, "cannot write the texts to compare in \(dir): \(error)")
        }
        let args = ["-u", "--label", object.oldLabel, "--label", object.newLabel, a, b]
        let r: ProcessCapture.Separated
        do {
            r = try await ProcessCapture.runTool(executable, args, deadline: timeoutSeconds)
        } catch {
            throw SyncError(.diffTool, "cannot run \(executable): \(error)")
        }
        guard r.ended else { throw SyncError(.diffTool, "\(executable) gave no answer within \(Int(timeoutSeconds)) s; killed") }
        // diff's own convention: 0 same, 1 different, 2 trouble.
        switch r.status {
        case .exited(0), .exited(1): return String(decoding: r.stdout, as: UTF8.self)
        default: throw SyncError(.diffTool, "\(executable) \(args.joined(separator: " ")): \(r.status): \(r.stderr)")
        }
    }
}
