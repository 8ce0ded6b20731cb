import InstanceContract
import SessionCore
import Testing

/// A machine and the actions it has said so far, driven with a fake clock.
private struct Driver {
    var machine: SessionMachine
    var now = 100.0
    var log: [SessionAction] = []

    init(_ plan: SessionPlan, boot: Bool = true) throws {
        machine = try SessionMachine(plan: plan, now: now)
        if boot {
            for i in plan.targets.indices { send(.booted(target: i)) }
            send(.started)
        }
    }

    @discardableResult
    mutating func send(_ e: SessionEvent, after seconds: Double = 0) -> [SessionAction] {
        now += seconds
        let a = machine.handle(e, now: now)
        log += a
        return a
    }

    mutating func serial(_ text: String, target: Int = 0, device: String = "uart0") -> [SessionAction] {
        send(.serial(target: target, device: device, bytes: Array(text.utf8)))
    }

    var code: Int32? { machine.finished?.code }
    var outcome: ShimStatus? { machine.finished?.outcome }
    var notes: [String] { log.compactMap { if case .note(let s) = $0 { s } else { nil } } }
    var cases: [SessionCase] { log.compactMap { if case .junit(let c) = $0 { c } else { nil } } }
    var timers: [SessionTimer: Double] {
        var out: [SessionTimer: Double] = [:]
        for case .arm(let t, let s) in log { out[t] = s }
        return out
    }
    func count(_ a: SessionAction) -> Int { log.filter { $0 == a }.count }
}

private func target(_ name: String = "t", readiness: String? = nil, idle: Double? = nil,
                    tests: [SessionPlan.Test] = [], sidecars: [SessionPlan.Sidecar] = []) -> SessionPlan.Target {
    SessionPlan.Target(name: name, readiness: readiness.map { .init(device: "uart0", pattern: $0, timeoutSeconds: 20) },
                       idleTTLSeconds: idle, tests: tests, sidecars: sidecars)
}

@Suite struct SessionMachineExitCodeTests {
    @Test func theCommandsExitCodeIsTheRunsIncludingSignals() throws {
        for (end, code) in [(ExitStatus.exited(0), Int32(0)), (.exited(3), 3), (.signalled(9), 137)] {
            var d = try Driver(SessionPlan(targets: [target()], command: ["pytest", "-q"]))
            #expect(d.count(.startCommand) == 1)
            d.send(.commandExited(end), after: 2)
            #expect(d.code == code)
            #expect(d.outcome?.phase == (code == 0 ? .succeeded : .failed))
            #expect(d.outcome?.reason == (code == 0 ? .commandSucceeded : .commandFailed))
            let c = try #require(d.cases.last)
            #expect(c.classname == "command" && c.name == "pytest -q" && c.seconds == 2)
            #expect(c.failure == (code == 0 ? nil : "ended with \(end)"))
            #expect(c.output == (code == 0 ? nil : .recentSerial(target: 0)))
            #expect(d.notes.contains("command pytest ended with \(end)") == (code != 0))
        }
    }

    @Test func untilMatchEndsWithZeroAndMatchesAcrossChunks() throws {
        var d = try Driver(SessionPlan(targets: [target()], until: "hel+o world"))
        #expect(d.serial("boot: hel").allSatisfy { if case .finish = $0 { false } else { true } })
        d.serial("lo wor")
        #expect(d.code == nil)
        let last = d.serial("ld\n")
        #expect(d.code == 0 && d.outcome == .succeeded(.untilMatched, "output matched /hel+o world/"))
        #expect(last.first == .output(target: 0, device: "uart0", bytes: Array("ld\n".utf8)))
        #expect(last.contains(.flushOutput))
        #expect(d.cases.last?.name == "until /hel+o world/")
    }

    @Test func timeoutTTLReadinessAndQEMUDeathExitOne() throws {
        var d = try Driver(SessionPlan(targets: [target()], until: "never", timeoutSeconds: 1.5))
        #expect(d.timers[.timeout] == 1.5)
        d.send(.timeout, after: 1.5)
        #expect(d.code == 1 && d.outcome == .failed(.timeout, "timed out after 1.5s waiting for /never/"))
        #expect(d.cases.last?.name == "until /never/")

        d = try Driver(SessionPlan(targets: [target()], timeoutSeconds: 0.25))
        d.send(.timeout)
        #expect(d.outcome?.message == "timed out after 250ms" && d.cases.last?.name == "timeout")

        d = try Driver(SessionPlan(targets: [target()], ttlSeconds: 60))
        #expect(d.timers[.ttl] == 60)
        d.send(.ttlExpired, after: 60)
        #expect(d.code == 1 && d.outcome == ShimStatus(phase: .expired, reason: .ttlExpired, message: "the TTL of 60s was reached"))
        #expect(d.notes.last == "expired: the TTL of 60s was reached")

        d = try Driver(SessionPlan(targets: [target(readiness: "READY")]))
        #expect(d.timers[.readiness(target: 0)] == 20)
        d.send(.readinessTimeout(target: 0), after: 20)
        #expect(d.code == 1 && d.outcome == .failed(.readinessTimeout, "no /READY/ on uart0 within 20s"))
        #expect(d.cases.last?.output == .recentSerial(target: 0))

        d = try Driver(SessionPlan(targets: [target("a"), target("b")], command: ["true"]))
        d.send(.qemuExited(target: 1, status: .signalled(11), stderr: "boom\n"))
        #expect(d.code == 1)
        var expected = ShimStatus.failed(.qemuExited, "QEMU exited unexpectedly (killed by signal 11)")
        expected.signal = 11
        expected.stderrTail = ["boom"]
        #expect(d.outcome == expected)
        #expect(d.notes.last == "b: QEMU exited unexpectedly (killed by signal 11); QEMU said:\nboom")
    }

    @Test func qemuExitingZeroIsSuccessOnlyWithNothingElseToWaitFor() throws {
        var d = try Driver(SessionPlan(targets: [target()]))
        d.send(.qemuExited(target: 0, status: .exited(0), stderr: ""))
        #expect(d.code == 0 && d.outcome == .succeeded(.qemuExited, "QEMU exited with status 0"))
        #expect(d.notes == ["t: QEMU exited"])

        for plan in [SessionPlan(targets: [target()], until: "x"), SessionPlan(targets: [target()], command: ["sh"])] {
            var d = try Driver(plan)
            d.send(.qemuExited(target: 0, status: .exited(0), stderr: ""))
            #expect(d.code == 1 && d.outcome?.exitCode == 0 && d.outcome?.reason == .qemuExited)
        }
    }

    @Test func aSignalEndsWith128PlusItAsStopped() throws {
        var d = try Driver(SessionPlan(targets: [target()], command: ["sleep"]))
        d.send(.signal(15))
        #expect(d.code == 143 && d.outcome == .succeeded(.stopped, "stopped by signal 15"))
        #expect(d.send(.commandExited(.exited(0))).isEmpty, "nothing after finish")
    }

    @Test func invalidSpecIsTwoAndOtherFailuresOne() throws {
        var d = try Driver(SessionPlan(targets: [target()]), boot: false)
        d.send(.invalidSpec("f.yaml:3:1: bad"))
        #expect(d.code == 2 && d.outcome == .failed(.invalidSpec, "f.yaml:3:1: bad"))

        d = try Driver(SessionPlan(targets: [target()]), boot: false)
        d.send(.startFailed("command not found: nope"))
        #expect(d.code == 1 && d.outcome == .failed(.startFailed, "command not found: nope"))

        d = try Driver(SessionPlan(targets: [target("fw")]), boot: false)
        d.send(.bootFailed(target: 0, status: .exited(1), stderr: "qemu: bad ELF\n"))
        #expect(d.code == 1)
        #expect(d.outcome?.message == "fw: QEMU failed to start (exit code 1)\nqemu: bad ELF")
        #expect(d.outcome?.exitCode == 1 && d.outcome?.stderrTail == ["qemu: bad ELF"])
        #expect(d.cases.last == SessionCase(classname: "fw", name: "boot", seconds: 0, failure: "QEMU failed to start (exit code 1)", output: .text("qemu: bad ELF\n")))
    }

    @Test func badPatternsAreRefusedAtConstruction() {
        #expect(throws: (any Error).self) { try SessionMachine(plan: SessionPlan(targets: [target()], until: "("), now: 0) }
        #expect(throws: (any Error).self) { try SessionMachine(plan: SessionPlan(targets: [target(readiness: "[")]), now: 0) }
    }
}

@Suite struct SessionMachineReadinessTests {
    @Test func theCommandWaitsForEveryTargetToBeReady() throws {
        var d = try Driver(SessionPlan(targets: [target("a", readiness: "READY"), target("b", readiness: "UP")], command: ["run"]))
        #expect(d.count(.startCommand) == 0 && d.count(.markReady(target: 0)) == 0)
        d.serial("REA", target: 0)
        d.serial("DY\n", target: 0)
        #expect(d.count(.markReady(target: 0)) == 1 && d.notes.last == "a is Ready" && d.count(.startCommand) == 0)
        d.serial("UP", target: 1, device: "uart1")
        #expect(d.count(.markReady(target: 1)) == 0, "the pattern is only looked for on its device")
        d.serial("UP", target: 1)
        #expect(d.count(.startCommand) == 1)
        #expect(d.send(.readinessTimeout(target: 0)).isEmpty, "a Ready target's timer is stale")
        d.serial("READY", target: 0)
        #expect(d.count(.markReady(target: 0)) == 1, "Ready once")
    }

    @Test func aTargetWithoutReadinessIsReadyAtBoot() throws {
        var d = try Driver(SessionPlan(targets: [target()]), boot: false)
        #expect(d.send(.booted(target: 0)) == [.junit(SessionCase(classname: "t", name: "boot", seconds: 0)), .markReady(target: 0)])
    }

    @Test func serialOutputIsWrittenWhateverElseHappens() throws {
        var d = try Driver(SessionPlan(targets: [target()]))
        #expect(d.serial("x") == [.output(target: 0, device: "uart0", bytes: [0x78])])
    }
}

@Suite struct SessionMachineTestTests {
    static let ping = SessionPlan.Test(name: "ping", steps: [.send("ping\r", device: nil), .expect(pattern: "po+ng", timeoutSeconds: 2, device: nil)])
    static let version = SessionPlan.Test(name: "version", steps: [.expect(pattern: "v[0-9]", timeoutSeconds: 3, device: "uart1")])

    @Test func stepsRunInOrderAndAllPassing() throws {
        var d = try Driver(SessionPlan(targets: [target(readiness: "READY", tests: [Self.ping, Self.version])]))
        #expect(d.count(.send(target: 0, device: "uart0", bytes: Array("ping\r".utf8))) == 0, "tests wait for Ready")
        d.serial("READY\n")
        #expect(d.count(.send(target: 0, device: "uart0", bytes: Array("ping\r".utf8))) == 1)
        #expect(d.timers[.step(token: 1)] == 2)
        d.serial("pooo", device: "uart1")
        #expect(d.cases.count == 2, "output of another device does not count")
        d.send(.serial(target: 0, device: "uart0", bytes: Array("po".utf8)), after: 0.5)
        d.serial("ong")
        #expect(d.cases.last == SessionCase(classname: "t", name: "ping", seconds: 0.5))
        #expect(d.timers[.step(token: 2)] == 3)
        #expect(d.send(.stepTimeout(token: 1)).isEmpty, "a stale step timer")
        d.serial("v2", device: "uart1")
        #expect(d.code == 0 && d.outcome == .succeeded(.testsPassed, "every test passed"))
    }

    @Test func aStepTimeoutFailsTheTestAndTheRestStillRun() throws {
        var d = try Driver(SessionPlan(targets: [target(tests: [Self.ping, Self.version])]))
        d.send(.stepTimeout(token: 1), after: 2)
        #expect(d.notes.last == "t: test ping failed: no /po+ng/ on uart0 within 2s")
        #expect(d.cases.last?.output == .recentSerial(target: 0) && d.cases.last?.seconds == 2)
        #expect(d.code == nil)
        d.serial("v9", device: "uart1")
        #expect(d.code == 1 && d.outcome == .failed(.testsFailed, "1 test(s) failed"))
    }

    @Test func anInvalidPatternFailsItsTest() throws {
        let bad = SessionPlan.Test(name: "bad", steps: [.expect(pattern: "(", timeoutSeconds: 1, device: nil)])
        var d = try Driver(SessionPlan(targets: [target(tests: [bad])]))
        #expect(d.notes == ["t: test bad failed: invalid pattern"])
        #expect(d.code == 1)
    }

    @Test func withACommandTheTestsRunFirstAndDoNotDecide() throws {
        var d = try Driver(SessionPlan(targets: [target(tests: [Self.version])], command: ["check"]))
        #expect(d.count(.startCommand) == 0)
        d.send(.stepTimeout(token: 1))
        #expect(d.count(.startCommand) == 1 && d.code == nil)
        d.send(.commandExited(.exited(0)))
        #expect(d.code == 0)
    }

    @Test func withUntilTheTestsDoNotEndTheRun() throws {
        var d = try Driver(SessionPlan(targets: [target(tests: [Self.version])], until: "DONE"))
        d.serial("v1", device: "uart1")
        #expect(d.code == nil)
        d.serial("DONE")
        #expect(d.code == 0)
    }
}

@Suite struct SessionMachineSidecarTests {
    @Test func testSidecarsDecideTheRun() throws {
        let plan = SessionPlan(targets: [target(readiness: "R", sidecars: [.init(name: "agent", isTest: true), .init(name: "log", isTest: false)]),
                                         target("b", sidecars: [.init(name: "probe", isTest: true)])])
        for (first, second, code) in [(ExitStatus.exited(0), ExitStatus.exited(0), Int32(0)), (.exited(0), .exited(4), 1), (.signalled(9), .exited(0), 1)] {
            var d = try Driver(plan)
            #expect(d.count(.startSidecars) == 0)
            d.serial("R")
            #expect(d.count(.startSidecars) == 1)
            d.send(.sidecarExited(target: 0, name: "log", test: false, status: .exited(1)))
            #expect(d.notes.last == "t: helper sidecar log ended with exit code 1" && d.code == nil)
            d.send(.sidecarExited(target: 0, name: "agent", test: true, status: first))
            #expect(d.code == nil)
            d.send(.sidecarExited(target: 1, name: "probe", test: true, status: second))
            #expect(d.code == code)
            #expect(d.outcome == (code == 0 ? .succeeded(.testsPassed, "every test passed") : .failed(.testsFailed, "1 test(s) failed")))
            let failed = d.cases.filter { $0.failure != nil }
            #expect(failed.count == (code == 0 ? 0 : 1))
            // Every test sidecar's case carries its log, passing or not.
            let sidecarCases = d.cases.filter { $0.name.hasPrefix("sidecar ") }
            #expect(sidecarCases.count == 2 && sidecarCases.allSatisfy { if case .sidecarLog = $0.output { true } else { false } })
        }
    }

    @Test func helperSidecarsAloneNeitherEndTheRunNorBlockIt() throws {
        var d = try Driver(SessionPlan(targets: [target(sidecars: [.init(name: "h", isTest: false)])], command: ["c"]))
        #expect(d.log.firstIndex(of: .startSidecars)! < d.log.firstIndex(of: .startCommand)!)
        d.send(.sidecarExited(target: 0, name: "h", test: false, status: .exited(0)))
        #expect(d.code == nil && d.notes.isEmpty)
        d.send(.commandExited(.exited(5)))
        #expect(d.code == 5)
    }

    @Test func sidecarsStartOnceAfterTheTests() throws {
        let t = SessionPlan.Test(name: "t", steps: [.expect(pattern: "x", timeoutSeconds: 1, device: nil)])
        var d = try Driver(SessionPlan(targets: [target(tests: [t], sidecars: [.init(name: "s", isTest: true)])]))
        #expect(d.count(.startSidecars) == 0)
        d.serial("x")
        #expect(d.count(.startSidecars) == 1 && d.code == nil)
        d.serial("x")
        #expect(d.count(.startSidecars) == 1)
        d.send(.sidecarExited(target: 0, name: "s", test: true, status: .exited(0)))
        #expect(d.code == 0)
    }
}

@Suite struct SessionMachineLifetimeTests {
    @Test func idleTTLExpiresWithoutClientsAndAClientResetsIt() throws {
        var d = try Driver(SessionPlan(targets: [target("busy"), target("idle", idle: 3)]))
        #expect(d.timers[.idleCheck] == 1)
        d.send(.idleCheck(clients: [0, 1]), after: 2)
        d.send(.idleCheck(clients: [0, 0]), after: 2)
        #expect(d.code == nil, "a client 2 s ago")
        #expect(d.count(.arm(.idleCheck, seconds: 1)) == 3, "re-armed each time")
        d.send(.idleCheck(clients: [0, 0]), after: 1)
        #expect(d.code == 1)
        #expect(d.outcome == ShimStatus(phase: .expired, reason: .idleTTLExpired, message: "expired: no client on any endpoint of idle for 3s (idleTTL)"))
    }

    @Test func noIdleCheckWithoutIdleTTL() throws {
        let d = try Driver(SessionPlan(targets: [target()]))
        #expect(d.timers[.idleCheck] == nil && d.timers.isEmpty)
    }

    @Test func releasesCountGenerationsAndKeepTheRunGoing() throws {
        var d = try Driver(SessionPlan(targets: [target()]))
        #expect(d.send(.released) == [.release(generation: 1), .note("released to the pool: serial replay and clients reset")])
        #expect(d.send(.released).first == .release(generation: 2))
        #expect(d.code == nil)
    }
}

/// Issue 14.19: patterns match within lines, not within chunks as they came.
@Suite struct SessionMachineLineTests {
    @Test func dollarAtTheEndOfAnUnfinishedLineWaitsForTheLine() throws {
        var d = try Driver(SessionPlan(targets: [target()], until: "(a+)+$"))
        d.serial("aaaa")
        #expect(d.code == nil, "the line may go on")
        d.serial("ab\n")
        #expect(d.code == nil, "the line ends in b")
        d.serial("xaa")
        d.serial("a\r\n")
        #expect(d.code == 0, "a line that ends in a, with CRLF")
    }

    @Test func aPatternNeverSpansLines() throws {
        var d = try Driver(SessionPlan(targets: [target()], until: "hello world"))
        d.serial("hello\nworld\n")
        #expect(d.code == nil)
        d.serial("say hello wor")
        d.serial("ld")
        #expect(d.code == 0, "an unfinished line (a prompt) matches as it grows")
    }

    @Test func anchorsAreTheLine() throws {
        var d = try Driver(SessionPlan(targets: [target(readiness: "^READY$")], command: ["c"]))
        d.serial("NOT READY\nREADY")
        #expect(d.count(.markReady(target: 0)) == 0, "READY may go on")
        d.serial("\n")
        #expect(d.count(.markReady(target: 0)) == 1)
    }

    @Test func aLongLineIsMatchedOnItsLast4KiBAndDoesNotStall() throws {
        var d = try Driver(SessionPlan(targets: [target()], until: "(a+)+$"))
        let start = ContinuousClock.now
        // A line of 64 KiB of 'a' arriving in chunks: each chunk matches at once.
        for _ in 0..<64 { d.serial(String(repeating: "a", count: 1024)) }
        #expect(d.code == nil)
        d.serial("\n")
        #expect(d.code == 0)
        #expect(ContinuousClock.now - start < .seconds(20))
    }

    @Test func anExpectStepMatchesLinesFromItsStart() throws {
        let t = SessionPlan.Test(name: "p", steps: [.expect(pattern: "^pong$", timeoutSeconds: 2, device: nil)])
        var d = try Driver(SessionPlan(targets: [target(tests: [t])]))
        d.serial("ping pong")
        d.serial("\r\n")
        #expect(d.code == nil)
        d.serial("pong\r\n")
        #expect(d.code == 0)
    }
}

/// Issue 14.8: QEMU's run state, as the shell reads it after STOP and RESUME.
@Suite struct SessionMachinePauseTests {
    @Test func onlyChangesOfTheRunStateAreMarked() throws {
        var d = try Driver(SessionPlan(targets: [target()]))
        #expect(d.send(.runState(target: 0, paused: false)).isEmpty, "running, as it was: nothing to say (a savevm's STOP and RESUME)")
        #expect(d.send(.runState(target: 0, paused: true)).first == .markPaused(target: 0, paused: true))
        #expect(d.send(.runState(target: 0, paused: true)).isEmpty)
        #expect(d.send(.runState(target: 0, paused: false)).first == .markPaused(target: 0, paused: false))
        #expect(d.code == nil, "a pause ends nothing")
    }

    /// Issue 14.19: `(a+)+$` never matches a line that does not end in `a`,
    /// however the line is cut into chunks.
    @Test func aBacktrackingPatternMatchesOnlyLinesEndingInA() throws {
        let line = "aaaaaaab"
        for cut in 0...line.count {
            var d = try Driver(SessionPlan(targets: [target()], until: "(a+)+$"))
            d.serial(String(line.prefix(cut)))
            d.serial(String(line.dropFirst(cut)) + "\n")
            #expect(d.code == nil, "cut at \(cut)")
        }
    }
}
