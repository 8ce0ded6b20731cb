import Foundation
import InstanceContract
import Testing
import TestSupport

/// Issue 14.4 and 14.8: the logs of an instance that ended, and a paused
/// instance's status, for `vtarget run` and for the supervisor.
@Suite(.serialized) struct EndedInstanceTests {
    /// A run whose test sidecar prints a line: after the run, `logs --sidecar`
    /// shows it and `logs` the serial output, saying when it ended.
    @Test func aFinishedRunsLogsStayReadable() throws {
        let runtime = makeRuntimeDir()
        let state = runtime + "-state"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let env = ["VTARGET_STATE_DIR": state]
        let run = try finish(launch(["run", "-f", "examples/lm3s6965evb-sidecars.yaml", "-f", firmware + "/lm3s6965evb-firmware.yaml", "--timeout", "60s"],
                                    runtime: runtime, environment: env))
        #expect(run.code == 0, "\(run.stderr)")
        var r = try finish(launch(["logs", "lm3s6965evb", "--sidecar", "ping-test"], runtime: runtime, environment: env))
        #expect(r.code == 0 && r.stdout.contains("pong from lm3s6965evb at level 2"), "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("lm3s6965evb (ended at "), "\(r.stderr)")
        r = try finish(launch(["logs", "lm3s6965evb"], runtime: runtime, environment: env))
        #expect(r.code == 0 && r.stdout.contains("hello from lm3s6965evb"), "\(r.stdout) \(r.stderr)")
        r = try finish(launch(["logs", "lm3s6965evb", "--previous"], runtime: runtime, environment: env))
        #expect(r.code == 1 && r.stderr.contains("no earlier run"), "one run so far: \(r.stderr)")
        r = try finish(launch(["logs", "nosuch"], runtime: runtime, environment: env))
        #expect(r.code == 1 && r.stderr.contains("no running instance \"nosuch\"") && r.stderr.contains("nor has an instance of that name ended"), "\(r.stderr)")
        expectNothingLeft(runtime)
    }

    /// A sidecar's log fills while it runs (a shell's echo, Python's print
    /// to a file), not only once it exits.
    @Test func aSidecarsLogFillsWhileItRuns() throws {
        let runtime = makeRuntimeDir()
        let env = ["VTARGET_STATE_DIR": runtime + "-state"]
        defer { try? FileManager.default.removeItem(atPath: runtime + "-state") }
        let spec = runtime + ".yaml"
        defer { try? FileManager.default.removeItem(atPath: spec) }
        var text = try String(contentsOfFile: repoRoot + "/examples/lm3s6965evb.yaml", encoding: .utf8)
        text += """
              sidecars:
                - name: talker
                  role: helper
                  command: ["sh", "-c", "echo from-shell; python3 -c 'import time; print(\\"from-python\\"); time.sleep(60)'"]

            """
        try text.write(toFile: spec, atomically: true, encoding: .utf8)
        let (p, out, err) = try launch(["run", "-f", spec, "-f", firmware + "/lm3s6965evb-firmware.yaml", "--timeout", "60s"],
                                       runtime: runtime, environment: env)
        var seen = ""
        for _ in 0..<200 where !(seen.contains("from-shell") && seen.contains("from-python")) {
            seen = (try? finish(launch(["logs", "lm3s6965evb", "--sidecar", "talker"], runtime: runtime, environment: env)))?.stdout ?? ""
            usleep(100_000)
        }
        #expect(p.isRunning, "the run still runs")
        #expect(seen.contains("from-shell") && seen.contains("from-python"), "\(seen)")
        kill(p.processIdentifier, SIGTERM)
        _ = finish((p, out, err))
        expectNothingLeft(runtime)
    }

    /// `vtarget pause` of a run's instance: its record says paused within a
    /// second or two, the run says so on stderr, and resume undoes it.
    @Test func aPausedRunSaysPaused() throws {
        let runtime = makeRuntimeDir()
        let env = ["VTARGET_STATE_DIR": runtime + "-state"]
        defer { try? FileManager.default.removeItem(atPath: runtime + "-state") }
        let (p, out, err) = try launch(["run"] + exampleArgs("lm3s6965evb") + ["--timeout", "90s"], runtime: runtime, environment: env)
        defer { if p.isRunning { kill(p.processIdentifier, SIGTERM) } }
        var r = try finish(launch(["wait", "lm3s6965evb", "--for", "condition=Ready", "--timeout", "40s"], runtime: runtime, environment: env))
        #expect(r.code == 0, "\(r.stderr)")
        let record = runtime + "/run-\(p.processIdentifier)/lm3s6965evb/instance.json"
        func paused() -> Bool? { FileManager.default.contents(atPath: record).flatMap(InstanceRecord.decode).map { $0.paused == true } }
        func waitFor(_ want: Bool) -> Bool {
            for _ in 0..<40 where paused() != want { usleep(50_000) }
            return paused() == want
        }
        r = try finish(launch(["pause", "lm3s6965evb"], runtime: runtime, environment: env))
        #expect(r.code == 0 && r.stdout.contains("lm3s6965evb paused"), "\(r.stdout) \(r.stderr)")
        #expect(waitFor(true), "instance.json says paused within 2 s")
        r = try finish(launch(["resume", "lm3s6965evb"], runtime: runtime, environment: env))
        #expect(r.code == 0 && r.stdout.contains("lm3s6965evb resumed"), "\(r.stdout) \(r.stderr)")
        #expect(waitFor(false), "and running again")
        kill(p.processIdentifier, SIGTERM)
        let ran = finish((p, out, err))
        #expect(ran.stderr.contains("lm3s6965evb paused: its CPUs are stopped") && ran.stderr.contains("lm3s6965evb resumed"), "\(ran.stderr)")
        expectNothingLeft(runtime)
    }

    /// Supervised: pause shows `Paused` in STATUS and describe, resume
    /// `Running`, events record both.
    @Test func aPausedSupervisedInstanceShowsPaused() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        var r = try f.vt(["apply", "-f", "examples/lm3s6965evb.yaml", "-f", f.firmwareMap])
        #expect(r.code == 0, "\(r.stderr)")
        try f.waitFor("Ready", f.allReady(1))
        func status() throws -> String {
            let lines = try f.vt(["get", "instances"]).stdout.split(separator: "\n").dropFirst()
            return lines.first.map { $0.split(separator: " ", omittingEmptySubsequences: true)[2].description } ?? ""
        }
        func waitStatus(_ want: String) throws -> String {
            var s = ""
            for _ in 0..<20 {
                s = try status()
                if s == want { break }
                usleep(100_000)
            }
            return s
        }
        r = try f.vt(["pause", "lm3s6965evb"])
        #expect(r.code == 0 && r.stdout.contains("paused"), "\(r.stdout) \(r.stderr)")
        #expect(try waitStatus("Paused") == "Paused")
        r = try f.vt(["describe", "instance", "lm3s6965evb"])
        #expect(r.stdout.contains("Paused") && r.stdout.contains("PausedByUser"), "\(r.stdout)")
        r = try f.vt(["resume", "lm3s6965evb"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try waitStatus("Running") == "Running")
        r = try f.vt(["events"])
        #expect(r.stdout.contains("Paused") && r.stdout.contains("Resumed"), "\(r.stdout)")
    }

    /// Supervised: an instance that ended Succeeded keeps its logs (serial
    /// and sidecar); once deleted, `logs` says not found.
    @Test func aSucceededSupervisedInstanceKeepsItsLogsUntilDeleted() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        var r = try f.vt(["apply", "-f", "examples/lm3s6965evb-sidecars.yaml", "-f", f.firmwareMap])
        #expect(r.code == 0, "\(r.stderr)")
        try f.waitFor("Succeeded", seconds: 40) { $0.first.map { f.status($0)["phase"] as? String == "Succeeded" } ?? false }
        r = try f.vt(["logs", "lm3s6965evb"])
        #expect(r.code == 0 && r.stdout.contains("hello from lm3s6965evb") && r.stderr.contains("(ended at "), "\(r.stdout) \(r.stderr)")
        r = try f.vt(["logs", "lm3s6965evb", "--sidecar", "ping-test"])
        #expect(r.code == 0 && r.stdout.contains("pong from lm3s6965evb at level 2"), "\(r.stdout) \(r.stderr)")
        r = try f.vt(["delete", "-f", "examples/lm3s6965evb-sidecars.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["logs", "lm3s6965evb"])
        #expect(r.code == 1 && r.stderr.contains("no running instance \"lm3s6965evb\""), "\(r.stdout) \(r.stderr)")
    }
}

/// A shim killed outright keeps no logs itself: the supervisor keeps them
/// from its runtime directory before removing it.
@Suite(.serialized) struct KilledShimLogsTests {
    @Test func aKilledShimsLogsAreKeptByTheSupervisor() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        var r = try f.vt(["apply", "-f", "examples/lm3s6965evb.yaml", "-f", f.firmwareMap])
        #expect(r.code == 0, "\(r.stderr)")
        try f.waitFor("Ready", f.allReady(1))
        for pid in f.shims() { kill(pid, SIGKILL) }
        try f.waitFor("ShimDied", seconds: 20) { $0.first.map { f.status($0)["reason"] as? String == "ShimDied" } ?? false }
        r = try f.vt(["logs", "lm3s6965evb"])
        #expect(r.code == 0 && r.stdout.contains("hello from lm3s6965evb") && r.stderr.contains("(ended at "), "\(r.stdout) \(r.stderr)")
    }
}

/// A pool release stops and continues its member itself (stop, loadvm, cont):
/// that is no pause, so no Paused event and no Paused status.
@Suite(.serialized) struct ReleaseIsNoPauseTests {
    @Test func aReleaseRecordsNoPause() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let path = try f.poolFile(board: "mps2-an385", firmwareMap: "mps2-an385-firmware", min: 1, max: 1)
        var r = try f.vt(["apply", "-f", path, "-f", firmware + "/mps2-an385-firmware.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["claim", "ci", "-o", "name", "--timeout", "30s"])
        #expect(r.code == 0, "\(r.stderr)")
        let member = r.stdout.split(separator: "/").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        for _ in 0..<3 {
            r = try f.vt(["release", member])
            #expect(r.code == 0 && r.stdout.contains("snapshot restored"), "\(r.stdout) \(r.stderr)")
            r = try f.vt(["claim", "ci", "-o", "name", "--timeout", "30s"])
            #expect(r.code == 0, "\(r.stderr)")
        }
        usleep(500_000)
        r = try f.vt(["events"])
        #expect(!r.stdout.contains("Paused") && !r.stdout.contains("Resumed"), "\(r.stdout)")
        r = try f.vt(["get", "instances"])
        #expect(!r.stdout.contains("Paused"), "\(r.stdout)")
    }
}
