import Foundation
import Testing
import TestSupport
@testable import VTargetCommands

/// The supervisor keeps one shim started ahead of need (`vtarget
/// --standby-shim`); the next start takes it, and it becomes that
/// instance's shim in every way a spawned one is.
@Suite(.serialized) struct StandbyShimTests {
    /// Every step of the warm-up does its work: a warm-up that quietly
    /// failed (a sample spec that no longer decodes, say) would only cost.
    @Test func theWarmUpParsesAndDecodes() {
        #expect(StandbyShim.warmUp())
    }

    @Test func aStartTakesTheStandbyWhichBecomesTheShim() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        var r = try f.vt(["apply", "-f", f.firmwareMap])
        #expect(r.code == 0, "\(r.stderr)")
        let first = f.waitForStandby()
        try #require(first.count == 1, "one standby: \(first)")

        r = try f.vt(["apply", "--wait", "--timeout", "20s", "-f", f.targets(["s1"])])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(f.shims() == first, "the standby is the shim now")
        let items = try f.waitFor("s1 Ready", f.allReady(1))
        guard let item = items.first else { return }
        #expect(f.status(item)["pid"] as? Int == Int(first[0]))
        #expect(try f.echoes(item))
        // Its title is the shim's argv, which ps, the orphan scan and these tests read.
        let cmdline = String(decoding: FileManager.default.contents(atPath: "/proc/\(first[0])/cmdline") ?? Data(), as: UTF8.self)
        #expect(cmdline.contains("\u{0}run\u{0}-f\u{0}\(f.state)/instances/default/s1/spec.yaml\u{0}--shim\u{0}{"), "\(cmdline.prefix(300))")
        #expect(!cmdline.contains("--standby-shim"))
        // Its output went to the instance's log, after the supervisor's start line.
        let log = (try? String(contentsOfFile: f.state + "/instances/default/s1/shim.log", encoding: .utf8)) ?? ""
        #expect(log.contains("--- vtarget: shim started at ") && log.contains("s1 is Ready"), "\(log)")

        // The next standby comes once starts pause; one that is killed is spawned around.
        let next = f.waitForStandby()
        try #require(next.count == 1 && next != first, "a new standby: \(next)")
        kill(next[0], SIGKILL)
        r = try f.vt(["apply", "--wait", "--timeout", "20s", "-f", f.targets(["s2"])])
        #expect(r.code == 0, "\(r.stderr)")
        try f.waitFor("both Ready", f.allReady(2))
        #expect(!f.shims().contains(next[0]))
    }

    /// A supervisor that dies leaves no standby: its pipe ends, and so does it.
    @Test func aStandbyEndsWithItsSupervisor() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let r = try f.vt(["apply", "-f", f.firmwareMap])
        #expect(r.code == 0, "\(r.stderr)")
        let standby = f.waitForStandby()
        try #require(standby.count == 1)
        let supervisor = try #require(f.supervisorPID())
        kill(supervisor, SIGKILL)
        for _ in 0..<100 where !ended(standby[0]) { usleep(20_000) }
        #expect(ended(standby[0]), "the standby outlived its supervisor")
        // The next supervisor (started by get) takes over the socket and stops in tearDown.
        _ = try f.instances()
    }

    @Test func noStandbyWhenTurnedOff() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let off = ["VTARGET_STANDBY_SHIM": "0"]
        var r = try f.vt(["apply", "-f", f.firmwareMap], extra: off)
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["apply", "--wait", "--timeout", "20s", "-f", f.targets(["s1"])], extra: off)
        #expect(r.code == 0, "\(r.stderr)")
        usleep(600_000)
        #expect(f.standbys().isEmpty)
        #expect(f.shims().count == 1)
    }

    /// Gone, or a zombie: with its parent killed it is init's to reap, and
    /// not every init (a container's) reaps.
    func ended(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
    }
}
