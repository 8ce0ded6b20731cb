import HostOS
import InstanceContract
import QMP
import Sandbox

extension RunSession.Live {
    /// How long each QMP command of a release may take: a hung QEMU must
    /// not keep the shim from its signals.
    static let releaseStepSeconds = 5.0

    /// The supervisor handed this pool member back (SIGUSR1): `stop`, so
    /// the guest writes nothing more; every serial hub reset (the previous
    /// claimer's clients, replay and pending output dropped); `loadvm
    /// vt-ready` where the snapshot was taken; `cont`; then the report the
    /// supervisor waits for, with this release's generation.
    func release(generation: Int) async {
        // Its own stop and cont are no pause: run states are not read meanwhile, and read once after.
        releasing.set(true)
        defer {
            releasing.set(false)
            for (i, t) in targets.enumerated() { runStates.1.yield((i, t)) }
        }
        var restored = snapshotTaken
        var problems: [String] = []
        if !snapshotTaken { problems.append("no vt-ready snapshot to restore") }
        for t in targets {
            guard let qmp = t.qmp else {
                restored = false
                problems.append("\(t.name): no QMP connection")
                continue
            }
            if let e = await Self.run(qmp, "stop") { problems.append("\(t.name): stop: \(e)") }
            for h in t.hubs { await h.reset() }
            if snapshotTaken {
                if let e = await Self.run(qmp, "human-monitor-command", .object(["command-line": .string("loadvm " + PoolSnapshot.name)]), expectEmpty: true) {
                    restored = false
                    problems.append("\(t.name): loadvm: \(e)")
                }
            }
            if let e = await Self.run(qmp, "cont") {
                restored = false
                problems.append("\(t.name): cont: \(e)")
            }
        }
        let report = ReleaseReport(generation: generation, restored: restored,
                                   message: problems.isEmpty ? nil : problems.joined(separator: "; "))
        status?.update { $0.release = report }
    }

    /// One QMP command, bounded; the error's text, or nil when it worked.
    /// `expectEmpty`: an HMP command, whose non-empty answer is its error.
    private static func run(_ qmp: QMPClient, _ command: String, _ arguments: JSONValue? = nil, expectEmpty: Bool = false) async -> String? {
        let answer = await withDeadline(releaseStepSeconds) { () -> Result<JSONValue, QMPError> in
            do throws(QMPError) { return .success(try await qmp.execute(command, arguments: arguments)) } catch { return .failure(error) }
        }
        switch answer {
        case nil: return "no answer within \(Int(releaseStepSeconds))s"
        case .failure(let e): return "\(e)"
        case .success(let r):
            guard expectEmpty, let text = r.stringValue, !text.isEmpty else { return nil }
            return text.trimmedTrailingNewlines
        }
    }
}
