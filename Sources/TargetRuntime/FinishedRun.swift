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

/// What is kept of an instance's run once it ended: its runtime directory
/// (sockets, logs) goes with the run, so the logs are copied first into the
/// instance's state directory (`InstanceStateLayout.lastRun`), as kubectl
/// keeps a completed pod's logs. A supervised instance's state directory is
/// removed with the instance (`vtarget delete`); a `vtarget run`'s is
/// `<state>/runs/<namespace>/<name>`, replaced by the next run of that name.
public enum FinishedRun {
    /// Copies the current file of each serial device and sidecar (`*.raw`,
    /// `*.log`; rotated ones are not kept), at most its last
    /// `InstanceStateLayout.keptLogBytes`, and `record` marked finished, into
    /// `state.lastRun`; the last run before becomes `previousRun`. Best
    /// effort: a failure is reported, and never stops a teardown.
    public static func keep(_ record: InstanceRecord, in state: InstanceStateLayout, finishedAt: Double) {
        let fm = FileManager.default
        let staging = state.directory + "/.last-run.tmp"
        RuntimeDirectory.removeTree(staging)
        do {
            try fm.createDirectory(atPath: staging + "/logs", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            chmod(state.directory, 0o700)
            let from = record.layout.logDirectory
            for file in ((try? fm.contentsOfDirectory(atPath: from)) ?? []).sorted() where file.hasSuffix(".raw") || file.hasSuffix(".log") {
                try copyTail(from + "/" + file, to: staging + "/logs/" + file)
            }
            var kept = record
            kept.directory = state.lastRun.directory
            kept.finishedAt = finishedAt
            kept.ready = false
            kept.paused = nil
            FileDescriptors.replaceFile(staging + "/instance.json", with: try kept.encoded())
            RuntimeDirectory.removeTree(state.previousRun.directory)
            if fm.fileExists(atPath: state.lastRun.directory) {
                try fm.moveItem(atPath: state.lastRun.directory, toPath: state.previousRun.directory)
            }
            try fm.moveItem(atPath: staging, toPath: state.lastRun.directory)
        } catch {
            RuntimeDirectory.removeTree(staging)
            note("\(record.name): its logs could not be kept in \(state.directory): \(error)")
        }
    }

    /// The end of `source`, at most `keptLogBytes`, into a new file `target` (0600).
    static func copyTail(_ source: String, to target: String) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else { throw RuntimeError("cannot read \(source): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard output >= 0 else { throw RuntimeError("cannot create \(target): \(String(cString: strerror(errno)))") }
        defer { close(output) }
        let size = lseek(input, 0, SEEK_END)
        lseek(input, max(0, size - off_t(InstanceStateLayout.keptLogBytes)), SEEK_SET)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(input, &buffer, buffer.count)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            guard FileDescriptors.writeAll(output, Array(buffer[0..<n])) else {
                throw RuntimeError("cannot write \(target): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// The kept record of `name`'s last run (or the one before, `previous`):
    /// a supervised instance's and a `vtarget run`'s, the most recently
    /// ended first; nil when there is none (never ran, or deleted).
    public static func find(_ name: String, namespace: String?, previous: Bool = false, environment: [String: String]) -> InstanceRecord? {
        let state = SupervisorPaths(environment: environment).stateDirectory
        let fm = FileManager.default
        var candidates: [InstanceStateLayout] = []
        for (sub, make) in [("instances", InstanceStateLayout.init(stateDirectory:namespace:name:)),
                            ("runs", InstanceStateLayout.unsupervised(stateDirectory:namespace:name:))] {
            let namespaces = namespace.map { [$0] } ?? ((try? fm.contentsOfDirectory(atPath: state + "/" + sub)) ?? [])
            candidates += namespaces.map { make(state, $0, name) }
        }
        return candidates
            .compactMap { c in
                let run = previous ? c.previousRun : c.lastRun
                return fm.contents(atPath: run.recordFile).flatMap(InstanceRecord.decode)
            }
            .filter { $0.name == name }
            .max { ($0.finishedAt ?? 0) < ($1.finishedAt ?? 0) }
    }
}
