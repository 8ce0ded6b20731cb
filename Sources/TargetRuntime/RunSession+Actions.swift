#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HostOS
import InstanceContract
import NIOCore
import QMP
import SessionCore

extension RunSession.Live {
    /// Does what the machine said.
    func perform(_ action: SessionAction) async throws {
        switch action {
        case .output:
            // Written as the hub read it (`connect`'s onSerial), not here, behind the session's events.
            break
        case .flushOutput:
            output.finish()
        case .note(let text):
            note(text)
        case .junit(let c):
            report.cases.append(.init(classname: c.classname, name: c.name, seconds: c.seconds, failure: c.failure,
                                      output: await text(of: c.output)))
        case .arm(let timer, let seconds):
            arm(timer, after: seconds)
        case .markReady(let i):
            // Under the supervisor, Ready (what apply --wait and wait hear) promises
            // the CAN devices are on their buses too. Not in the foreground: a
            // target Ready at start would hold its first serial output back until then.
            if config.supervised != nil { try await targets[i].busesJoined() }
            records[i].ready = true
            records[i].write()
            await takeSnapshot(targets[i])
            status?.update { $0.ready = true; $0.readyAt = ShimStatus.now }
        case .startSidecars:
            try await busesJoined()
            try await startSidecars()
        case .startCommand:
            try await busesJoined()
            try await startCommand()
        case .send(let i, let device, let bytes):
            targets[i].hubs.first { $0.name == device }?.send(bytes)
        case .release(let generation):
            await release(generation: generation)
        case .markPaused(let i, let paused):
            if i < records.count {
                records[i].paused = paused ? true : nil
                records[i].write()
            }
            status?.update { $0.paused = paused ? true : nil }
        case .finish(let code, let outcome):
            self.code = code
            self.outcome = outcome
        }
    }

    /// Every target's CAN devices on their buses: what the command and the
    /// sidecars are told (`VTARGET_CAN_*`) must be there when they start.
    private func busesJoined() async throws {
        for t in targets { try await t.busesJoined() }
    }

    /// A testcase's output, read now.
    private func text(of output: SessionCase.Output?) async -> String? {
        switch output {
        case nil: return nil
        case .text(let s): return s
        case .recentSerial(let i): return await recentSerial(i)
        case .sidecarLog(let i, let name):
            // The sidecar's own output, then what the target said meanwhile.
            let log = targets[i].layout.sidecarLog(name)
            return String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self)
                + "\n--- \(targets[i].name) serial output ---\n" + (await recentSerial(i))
        }
    }

    private func recentSerial(_ i: Int) async -> String {
        String(decoding: i < targets.count ? await targets[i].recentOutput() : [], as: UTF8.self)
    }

    /// A timer whose expiry comes back as its event; idle checks count the
    /// clients first (the machine only compares numbers).
    private func arm(_ timer: SessionTimer, after seconds: Double) {
        let sink = self.sink
        let watched = targets.enumerated().map { i, t in prepared[i].0.lifecycle.idleTTLSeconds == nil ? nil : t }
        let loop = group.next()
        timers.append(Task {
            await LoopTimer.sleep(seconds, on: loop)
            if Task.isCancelled { return }
            switch timer {
            case .timeout: sink.yield(.timeout)
            case .ttl: sink.yield(.ttlExpired)
            case .readiness(let i): sink.yield(.readinessTimeout(target: i))
            case .step(let token): sink.yield(.stepTimeout(token: token))
            case .idleCheck:
                var clients: [Int] = []
                for t in watched { clients.append(await t?.clientCount() ?? 0) }
                sink.yield(.idleCheck(clients: clients))
            }
        })
    }

    /// Pool members: the state to return to on release, taken once Ready.
    private func takeSnapshot(_ t: TargetProcess) async {
        guard t.plan.snapshotImage != nil, let qmp = t.qmp else { return }
        let r = try? await qmp.execute("human-monitor-command", arguments: .object(["command-line": .string("savevm " + PoolSnapshot.name)]))
        if let r, (r.stringValue ?? "").isEmpty {
            snapshotTaken = true
            status?.update { $0.snapshot = true }
        } else {
            note("\(t.name): savevm failed: \(r?.stringValue ?? "no answer"); the pool restarts it instead")
        }
    }
}
