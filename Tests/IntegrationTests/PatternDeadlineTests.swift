import Foundation
import NIOPosix
import SessionCore
import Testing
import TestSupport
@testable import TargetRuntime
import VTargetCommands

/// Issue 14.19: a pattern that backtracks for minutes cannot stall a run,
/// and an empty `--until` is refused.
@Suite(.serialized) struct PatternDeadlineTests {
    /// Measured: `(a+)+$` on 16 `a`s and a `b` takes ~5 s, each two more ×8.
    @Test func aStepThatOverrunsItsDeadlineIsAbandonedAndTheMachineKept() async throws {
        let plan = SessionPlan(targets: [.init(name: "t")], until: "(a+)+$")
        var machine = try SessionMachine(plan: plan, now: 0)
        _ = machine.handle(.booted(target: 0), now: 0)
        _ = machine.handle(.started, now: 0)
        let thread = MachineThread(deadlines: MultiThreadedEventLoopGroup.singleton.next())
        let quick = await thread.handle(machine, .serial(target: 0, device: "uart0", bytes: Array("aaab\n".utf8)), now: 1, seconds: 5)
        #expect(quick != nil && quick?.0.finished == nil, "(a+)+$ does not match a line ending in b")
        let start = ContinuousClock.now
        let slow = await thread.handle(machine, .serial(target: 0, device: "uart0", bytes: Array((String(repeating: "a", count: 16) + "b\n").utf8)),
                                       now: 2, seconds: 0.3)
        // nil: the deadline answered before the match ended (whichever comes first answers); the
        // time is not asserted, as parallel tests that block threads delay the timer in this process.
        #expect(slow == nil, "answered after \(ContinuousClock.now - start)")
        #expect(thread.isStuck)
        #expect(await thread.handle(machine, .timeout, now: 3) == nil, "a stuck thread takes no more steps")
        #expect(machine.patterns(target: 0, device: "uart0") == ["(a+)+$"])
    }

    /// A real run: 100,000 `a`s and a `b` echoed by the firmware on one line
    /// against `--until '(a+)+$'` ends at the deadline with exit 2, naming the pattern.
    @Test func aBacktrackingUntilEndsTheRunWithExitTwo() throws {
        let runtime = makeRuntimeDir()
        let script = "exec >/dev/null 2>&1; { head -c 100000 /dev/zero | tr '\\0' a; printf b; sleep 60; } | socat -t 60 - UNIX-CONNECT:$VTARGET_SERIAL_UART0 >/dev/null"
        let (p, out, err) = try launch(["run"] + exampleArgs("lm3s6965evb") + ["--until", "(a+)+$", "--timeout", "120s", "--", "sh", "-c", script],
                                       runtime: runtime, environment: ["VTARGET_STATE_DIR": runtime + "-state"])
        defer { try? FileManager.default.removeItem(atPath: runtime + "-state") }
        let r = finish((p, out, err))
        // What ended the run is told by its exit code and message, not by a
        // wall-clock bound: the 120 s --timeout and the command's end say
        // otherwise, and a bound (45 s) once failed on a loaded machine (52 s).
        #expect(r.code == 2, "stderr: \(r.stderr.suffix(800))")
        #expect(r.stderr.contains("the pattern /(a+)+$/ on a line of lm3s6965evb/uart0 took longer than 3s"), "\(r.stderr.suffix(800))")
        #expect(!r.stderr.contains("timed out"), "\(r.stderr.suffix(800))")
        expectNothingLeft(runtime)
    }

    @Test func anEmptyUntilIsBadInput() async {
        #expect(await VTarget.runMain(["run", "--until", "", "-f", "examples/lm3s6965evb.yaml"]) == 2)
    }
}

/// `vtarget wait --for serial=REGEX` is bounded by its --timeout however the pattern backtracks.
@Suite(.serialized) struct WaitPatternDeadlineTests {
    @Test func aBacktrackingWaitEndsAtItsTimeout() throws {
        let runtime = makeRuntimeDir()
        let env = ["VTARGET_STATE_DIR": runtime + "-state"]
        defer { try? FileManager.default.removeItem(atPath: runtime + "-state") }
        let (p, out, err) = try launch(["run"] + exampleArgs("lm3s6965evb") + ["--timeout", "90s"], runtime: runtime, environment: env)
        var r = try finish(launch(["wait", "lm3s6965evb", "--for", "condition=Ready", "--timeout", "40s"], runtime: runtime, environment: env))
        #expect(r.code == 0, "\(r.stderr)")
        let dir = "\(runtime)/run-\(p.processIdentifier)/lm3s6965evb"
        let feeder = try launch(["-c", "exec >/dev/null 2>&1; { head -c 3000 /dev/zero | tr '\\0' a; printf b; sleep 8; } | socat -t 8 - UNIX-CONNECT:\(dir)/uart0.sock"],
                                runtime: runtime, executable: "/bin/sh")
        // The whole line in the log first, so the match (--since-start) meets it at once.
        for _ in 0..<200 where !(FileManager.default.contents(atPath: dir + "/logs/uart0.raw").map { String(decoding: $0, as: UTF8.self).contains("ab") } ?? false) {
            usleep(50_000)
        }
        let start = Date()
        r = try finish(launch(["wait", "lm3s6965evb", "--for", "serial=(a+)+$", "--since-start", "--timeout", "5s"], runtime: runtime, environment: env))
        let seconds = Date().timeIntervalSince(start)
        _ = finish(feeder)
        #expect(r.code == 1 && r.stderr.contains("did not finish within 5s"), "\(r.stderr)")
        // The message says the match was abandoned at the timeout. A match on
        // 3,000 `a`s never ends, so a wait that waited for it would not return:
        // the bound is that hang's guard, far above the 5 s, not a speed goal
        // (9 s was one, and a loaded machine can exceed it).
        #expect(seconds < 60, "not at its 5 s timeout: \(seconds) s")
        kill(p.processIdentifier, SIGTERM)
        _ = finish((p, out, err))
        expectNothingLeft(runtime)
    }
}
