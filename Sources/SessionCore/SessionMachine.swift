import InstanceContract

/// The decisions of a `vtarget run` session, apart from its I/O: events in
/// (with the time they happened), actions out. The shell (`RunSession`)
/// starts processes, moves bytes and arms timers; everything that decides
/// an exit code, a phase or what starts next is here, so it is tested
/// without QEMU.
///
/// Exit codes: the command's when there is one; 0 when `--until` matched;
/// 1 on `--timeout`, a TTL, a readiness timeout or a QEMU that dies; 0 when
/// QEMU exits 0 with nothing else to wait for; 128+N on signal N; 2 for an
/// invalid spec. With declarative tests or test sidecars and neither a
/// command nor `--until`, the run ends when they do: 0 when all passed.
///
/// `@unchecked Sendable`: the shell hands a copy to the thread that handles
/// each event with a deadline (`MachineThread`) and takes the result back; the
/// only state the copies share is their `Regex`es, which are never mutated
/// after `init` (the standard library does not mark `Regex` Sendable).
public struct SessionMachine: @unchecked Sendable {
    public let plan: SessionPlan
    /// Set once the machine has said `finish`; every later event is ignored.
    public private(set) var finished: (code: Int32, outcome: ShimStatus)?

    private let started: Double
    private let until: Regex<AnyRegexOutput>?
    /// Targets still waiting for their readiness pattern.
    private var pendingReady: [Int: Regex<AnyRegexOutput>] = [:]
    private var watch = MatchWindows()
    private var lastClient: [Double]
    private var releases = 0
    /// Targets whose guest is paused.
    private var paused: Set<Int> = []

    // Declarative tests, in order, once every target is Ready.
    private let queue: [(target: Int, test: SessionPlan.Test)]
    private var current = 0, step = 0, token = 0
    private var testStart: Double
    private var expecting: (regex: Regex<AnyRegexOutput>, pattern: String, device: String, timeout: Double)?
    /// The lines of the device an `expect` step watches, from the step's start.
    private var testLines = MatchWindows()
    private var testsDone: Bool
    private var testFailures = 0

    // Sidecars start with the command; test sidecars decide the run.
    private var sidecarsStarted = false
    private var commandStarted = false
    private let testSidecars: Int
    private var testSidecarsRunning = 0
    private var sidecarFailures = 0

    private var actions: [SessionAction] = []

    /// Throws when `--until` or a readiness pattern is not a regular expression.
    public init(plan: SessionPlan, now: Double) throws {
        self.plan = plan
        started = now
        testStart = now
        until = try plan.until.map { try Regex($0) }
        for (i, t) in plan.targets.enumerated() {
            if let r = t.readiness { pendingReady[i] = try Regex(r.pattern) }
        }
        lastClient = Array(repeating: now, count: plan.targets.count)
        queue = plan.targets.enumerated().flatMap { i, t in t.tests.map { (i, $0) } }
        testsDone = queue.isEmpty
        testSidecars = plan.targets.reduce(0) { $0 + $1.sidecars.filter(\.isTest).count }
    }

    /// The actions for `event`, which happened at `now` (monotonic seconds).
    public mutating func handle(_ event: SessionEvent, now: Double) -> [SessionAction] {
        guard finished == nil else { return [] }
        switch event {
        case .booted(let i):
            junit(name(i), "boot", now)
            if plan.targets[i].readiness == nil { emit(.markReady(target: i)) }
        case .bootFailed(let i, let status, let stderr):
            let why = "QEMU failed to start (\(status))"
            junit(name(i), "boot", now, failure: why, output: .text(stderr))
            let message = "\(name(i)): \(why)\n" + stderr.trimmedTrailingNewlines
            note(message)
            var outcome = ShimStatus.failed(.startFailed, message)
            outcome.exit(status)
            outcome.stderrTail = ShimStatus.tail(stderr)
            finish(ExitCode.failure, outcome)
        case .started:
            begin(now)
        case .serial(let i, let device, let bytes):
            serial(i, device, bytes, now)
        case .qemuExited(let i, let status, let stderr):
            emit(.flushOutput)
            if status == .exited(0), plan.until == nil, plan.command.isEmpty {
                note("\(name(i)): QEMU exited")
                finish(ExitCode.success, .succeeded(.qemuExited, "QEMU exited with status 0"))
            } else {
                let text = stderr.trimmedTrailingNewlines
                note("\(name(i)): QEMU exited unexpectedly (\(status))" + (text.isEmpty ? "" : "; QEMU said:\n" + text))
                junit(name(i), "run", now, failure: "QEMU exited unexpectedly (\(status))", output: .text(stderr))
                var outcome = ShimStatus.failed(.qemuExited, "QEMU exited unexpectedly (\(status))")
                outcome.exit(status)
                outcome.stderrTail = ShimStatus.tail(stderr)
                finish(ExitCode.failure, outcome)
            }
        case .commandExited(let status):
            emit(.flushOutput)
            let code = status.shellCode
            junit("command", plan.command.joined(separator: " "), now, failure: code == 0 ? nil : "ended with \(status)",
                  output: code == 0 ? nil : .recentSerial(target: 0))
            if code != 0 { note("command \(plan.command[0]) ended with \(status)") }
            finish(code, code == 0 ? .succeeded(.commandSucceeded, "command ended with 0") : .failed(.commandFailed, "command ended with \(status)"))
        case .timeout:
            emit(.flushOutput)
            let why = "timed out after \(Self.format(plan.timeoutSeconds ?? 0))" + (plan.until.map { " waiting for /\($0)/" } ?? "")
            note(why)
            junit("run", plan.until.map { "until /\($0)/" } ?? "timeout", now, failure: why, output: .recentSerial(target: 0))
            finish(ExitCode.failure, .failed(.timeout, why))
        case .ttlExpired:
            emit(.flushOutput)
            let ttl = Self.format(plan.ttlSeconds ?? 0)
            note("expired: the TTL of \(ttl) was reached")
            junit("run", "ttl", now, failure: "expired: the TTL of \(ttl) was reached", output: .recentSerial(target: 0))
            finish(ExitCode.failure, ShimStatus(phase: .expired, reason: .ttlExpired, message: "the TTL of \(ttl) was reached"))
        case .idleCheck(let clients):
            idleCheck(clients, now)
        case .readinessTimeout(let i):
            guard pendingReady[i] != nil, let r = plan.targets[i].readiness else { break }
            emit(.flushOutput)
            let why = "no /\(r.pattern)/ on \(r.device) within \(Self.format(r.timeoutSeconds))"
            junit(name(i), "readiness", now, failure: why, output: .recentSerial(target: i))
            note("\(name(i)): not Ready: \(why)")
            finish(ExitCode.failure, .failed(.readinessTimeout, why))
        case .stepTimeout(let t):
            guard t == token, let e = expecting else { break }
            finishTest("no /\(e.pattern)/ on \(e.device) within \(Self.format(e.timeout))", now)
            advanceTests(now)
            startCommandIfReady(now)
            finishIfTestsDone()
        case .sidecarExited(let i, let sidecar, let isTest, let status):
            let failed = status != .exited(0)
            if isTest {
                testSidecarsRunning -= 1
                if failed { sidecarFailures += 1 }
                // Its output either way: a passing test's log is evidence too (JUnit system-out).
                junit(name(i), "sidecar \(sidecar)", now, failure: failed ? "ended with \(status)" : nil,
                      output: .sidecarLog(target: i, name: sidecar))
                note("\(name(i)): test sidecar \(sidecar) " + (failed ? "failed (\(status))" : "passed"))
            } else if failed {
                note("\(name(i)): helper sidecar \(sidecar) ended with \(status)")
            }
            finishIfTestsDone()
        case .released:
            releases += 1
            emit(.release(generation: releases))
            note("released to the pool: serial replay and clients reset")
        case .signal(let s):
            emit(.flushOutput)
            note("interrupted by signal \(s); stopping")
            finish(128 + s, .succeeded(.stopped, "stopped by signal \(s)"))
        case .runState(let i, let paused):
            // Only changes: a RESUME after savevm's STOP says nothing new.
            guard paused != self.paused.contains(i) else { break }
            if paused { self.paused.insert(i) } else { self.paused.remove(i) }
            emit(.markPaused(target: i, paused: paused))
            note("\(name(i)) " + (paused ? "paused: its CPUs are stopped (vtarget resume continues them)" : "resumed"))
        case .invalidSpec(let message):
            note(message)
            finish(ExitCode.badInput, .failed(.invalidSpec, message))
        case .startFailed(let message):
            note(message)
            finish(ExitCode.failure, .failed(.startFailed, message))
        }
        defer { actions = [] }
        return actions
    }

    /// The patterns that target `i`'s output on `device` is matched against
    /// now (`--until`, a readiness pattern not yet met, the current `expect`):
    /// what a message about a match that took too long names.
    public func patterns(target i: Int, device: String) -> [String] {
        var out: [String] = []
        if let p = plan.until { out.append(p) }
        if pendingReady[i] != nil, let r = plan.targets[i].readiness, r.device == device { out.append(r.pattern) }
        if let e = expecting, current < queue.count, queue[current].target == i, e.device == device { out.append(e.pattern) }
        return out
    }

    // MARK: - Steps

    private mutating func begin(_ now: Double) {
        testStart = now
        lastClient = Array(repeating: now, count: plan.targets.count)
        if let t = plan.timeoutSeconds { emit(.arm(.timeout, seconds: t)) }
        if let t = plan.ttlSeconds { emit(.arm(.ttl, seconds: t)) }
        if plan.targets.contains(where: { $0.idleTTLSeconds != nil }) { emit(.arm(.idleCheck, seconds: 1)) }
        for (i, t) in plan.targets.enumerated() {
            if let r = t.readiness { emit(.arm(.readiness(target: i), seconds: r.timeoutSeconds)) }
        }
        startCommandIfReady(now)
        finishIfTestsDone()
    }

    private mutating func serial(_ i: Int, _ device: String, _ bytes: [UInt8], _ now: Double) {
        emit(.output(target: i, device: device, bytes: bytes))
        if let e = expecting, queue[current].target == i, e.device == device {
            if testLines.append(key: "expect", bytes).contain(e.regex, pattern: e.pattern) {
                expecting = nil
                step += 1
                advanceTests(now)
                startCommandIfReady(now)
                if finishIfTestsDone() { return }
            }
        }
        // Text is made only while something waits for a pattern.
        let readyDevice = pendingReady[i] == nil ? nil : plan.targets[i].readiness?.device
        guard until != nil || readyDevice == device else { return }
        let text = watch.append(target: i, device: device, bytes)
        if let regex = pendingReady[i], readyDevice == device, let r = plan.targets[i].readiness, text.contain(regex, pattern: r.pattern) {
            pendingReady[i] = nil
            emit(.markReady(target: i))
            note("\(name(i)) is Ready")
            junit(name(i), "readiness", now)
            startCommandIfReady(now)
            if finishIfTestsDone() { return }
        }
        if let until, let pattern = plan.until, text.contain(until, pattern: pattern) {
            emit(.flushOutput)
            junit(name(i), "until /\(pattern)/", now)
            finish(ExitCode.success, .succeeded(.untilMatched, "output matched /\(pattern)/"))
        }
    }

    private mutating func idleCheck(_ clients: [Int], _ now: Double) {
        var idleFor: (Int, Double)?
        for (i, t) in plan.targets.enumerated() {
            guard let limit = t.idleTTLSeconds else { continue }
            if i < clients.count, clients[i] > 0 { lastClient[i] = now }
            else if now - lastClient[i] >= limit { idleFor = (i, limit) }
        }
        guard let (i, limit) = idleFor else { return emit(.arm(.idleCheck, seconds: 1)) }
        emit(.flushOutput)
        let why = "expired: no client on any endpoint of \(name(i)) for \(Self.format(limit)) (idleTTL)"
        note(why)
        junit(name(i), "idleTTL", now, failure: why)
        finish(ExitCode.failure, ShimStatus(phase: .expired, reason: .idleTTLExpired, message: why))
    }

    private mutating func finishTest(_ failure: String?, _ now: Double) {
        let (i, t) = queue[current]
        if let failure {
            testFailures += 1
            note("\(name(i)): test \(t.name) failed: \(failure)")
        }
        actions.append(.junit(SessionCase(classname: name(i), name: t.name, seconds: now - testStart, failure: failure,
                                          output: failure == nil ? nil : .recentSerial(target: i))))
        current += 1
        step = 0
        expecting = nil
        testStart = now
    }

    private mutating func advanceTests(_ now: Double) {
        while !testsDone {
            guard current < queue.count else { testsDone = true; return }
            let (i, t) = queue[current]
            guard step < t.steps.count else { finishTest(nil, now); continue }
            switch t.steps[step] {
            case .send(let text, let device):
                emit(.send(target: i, device: device ?? plan.targets[i].defaultDevice, bytes: Array(text.utf8)))
                step += 1
            case .expect(let pattern, let timeout, let device):
                guard let regex = try? Regex(pattern) else { finishTest("invalid pattern", now); continue }
                expecting = (regex, pattern, device ?? plan.targets[i].defaultDevice, timeout)
                testLines.reset(key: "expect")
                token += 1
                emit(.arm(.step(token: token), seconds: timeout))
                return
            }
        }
    }

    /// Once every target is Ready: the tests, then the sidecars and the command.
    private mutating func startCommandIfReady(_ now: Double) {
        guard pendingReady.isEmpty else { return }
        if !testsDone, expecting == nil, current == 0, step == 0 { advanceTests(now) }
        if testsDone, !sidecarsStarted {
            sidecarsStarted = true
            testSidecarsRunning = testSidecars
            if plan.targets.contains(where: { !$0.sidecars.isEmpty }) { emit(.startSidecars) }
        }
        guard testsDone, !plan.command.isEmpty, !commandStarted else { return }
        commandStarted = true
        emit(.startCommand)
    }

    /// With tests or test sidecars, and neither a command nor --until, the
    /// run ends when they do.
    @discardableResult
    private mutating func finishIfTestsDone() -> Bool {
        guard finished == nil, !queue.isEmpty || testSidecars > 0, testsDone, sidecarsStarted, testSidecarsRunning == 0,
              plan.command.isEmpty, plan.until == nil else { return false }
        let failures = testFailures + sidecarFailures
        if failures == 0 {
            finish(ExitCode.success, .succeeded(.testsPassed, "every test passed"))
        } else {
            finish(ExitCode.failure, .failed(.testsFailed, "\(failures) test(s) failed"))
        }
        return true
    }

    // MARK: - Helpers

    private func name(_ i: Int) -> String { plan.targets[i].name }

    private mutating func emit(_ a: SessionAction) { actions.append(a) }

    private mutating func note(_ s: String) { actions.append(.note(s)) }

    private mutating func junit(_ classname: String, _ name: String, _ now: Double, failure: String? = nil, output: SessionCase.Output? = nil) {
        actions.append(.junit(SessionCase(classname: classname, name: name, seconds: now - started, failure: failure, output: output)))
    }

    private mutating func finish(_ code: Int32, _ outcome: ShimStatus) {
        finished = (code, outcome)
        actions.append(.finish(code: code, outcome: outcome))
    }

    /// 500ms, 2s, 1.5s: as durations are written.
    public static func format(_ seconds: Double) -> String {
        seconds < 1 ? "\(Int(seconds * 1000))ms" : (seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s")
    }
}

extension ShimStatus {
    /// How the process that decided the outcome ended.
    public mutating func exit(_ end: ExitStatus) {
        switch end {
        case .exited(let c): exitCode = c
        case .signalled(let s): signal = s
        }
    }
}

extension String {
    var trimmedTrailingNewlines: String {
        var s = Substring(self)
        while s.last == "\n" || s.last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
