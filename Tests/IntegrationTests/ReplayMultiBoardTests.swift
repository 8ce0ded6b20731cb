import Foundation
import ReplayFormat
import Testing
import TestSupport

/// A recording of two boards on one CAN bus: one bundle, each board's
/// QEMU with its own replay log, so each replays alone, without the other
/// or the bus. One recorded run for every check.
@Suite(.serialized) struct ReplayMultiBoardTests {
    @Test func theCANPairIsRecordedIntoOneBundleAndEachBoardReplays() throws {
        let runtime = makeRuntimeDir()
        let bundles = runtime + "-bundles"
        defer { for d in [runtime, bundles, runtime + "-x"] { try? FileManager.default.removeItem(atPath: d) } }
        // Node A (stm32vldiscovery) sends 100#NN each tick; node B answers
        // 101#NN; the run ends when A has printed B's first answer.
        let record = try finish(launch([
            "run", "-f", repoRoot + "/examples/can-pair.yaml",
            "-f", "\(firmware)/stm32vldiscovery-can-a-firmware.yaml", "-f", "\(firmware)/netduinoplus2-can-b-firmware.yaml",
            "--record", bundles, "--until", "can rx 101", "--timeout", "180s",
        ], runtime: runtime))
        #expect(record.code == 0, "\(record.stdout)\n\(record.stderr)")
        #expect(record.stderr.contains("recorded the run: "), "\(record.stderr)")
        let recorded = try RecordedBundle.only(in: bundles)
        let bundle = recorded.path

        // The manifest: format 2, both boards, each one's log, argv, serial and CAN trace under boards/NAME/.
        let work = runtime + "-x"
        let manifest = try recorded.extract(to: work, runtime: runtime)
        #expect(manifest.formatVersion == 2)
        #expect(manifest.boards == [.init(name: "node-a", machine: "stm32vldiscovery"), .init(name: "node-b", machine: "netduinoplus2")],
                "\(String(describing: manifest.boards))")
        for name in ["node-a", "node-b"] {
            #expect(manifest.file(.replayLog, board: name)?.path == "boards/\(name)/replay.bin")
            #expect(manifest.file(.launch, board: name)?.path == "boards/\(name)/qemu/argv.json")
            #expect(manifest.files(board: name).contains { $0.role == .serialOutput && $0.device == "console" }, "\(manifest.files)")
            let can = manifest.files(board: name).first { $0.role == .canTrace }
            #expect(can?.path == "boards/\(name)/traces/can-can0.log" && (can?.entries ?? 0) > 0, "\(String(describing: can))")
        }
        #expect(manifest.file(.spec)?.board == nil)
        let outA = try String(contentsOfFile: work + "/boards/node-a/serial/console.out", encoding: .utf8)
        #expect(outA.contains("slcan node 1") && outA.contains("can rx 101"), "\(outA)")

        // bundle show lists both boards.
        let show = try vt(["bundle", "show", bundle], runtime: runtime)
        #expect(show.code == 0, "\(show.stderr)")
        #expect(show.stdout.contains("Boards:     node-a (machine stm32vldiscovery), node-b (machine netduinoplus2)"), "\(show.stdout)")
        #expect(show.stdout.contains("CAN frames (candump -L) of node-b/can0: "), "\(show.stdout)")

        // Each board replayed alone, in turn: both identical.
        let replay = try vt(["replay", bundle], runtime: runtime)
        #expect(replay.code == 0, "\(replay.stdout)\n\(replay.stderr)")
        #expect(replay.stderr.contains("node-a/console: serial output identical")
                && replay.stderr.contains("node-b/console: serial output identical"), "\(replay.stderr)")
        #expect(replay.stdout.contains("can rx 101"), "\(replay.stdout)")

        // One board by name; a name not in it, and --gdb without --board, are bad input.
        let one = try vt(["replay", "--board", "node-b", bundle], runtime: runtime)
        #expect(one.code == 0 && one.stderr.contains("node-b/console: serial output identical") && !one.stderr.contains("node-a/"),
                "\(one.stderr)")
        let unknown = try vt(["replay", "--board", "node-c", bundle], runtime: runtime)
        #expect(unknown.code == 2 && unknown.stderr.contains("--board node-c: the bundle has no such board; it has node-a, node-b"),
                "\(unknown.stderr)")
        let gdb = try vt(["replay", "--gdb", bundle], runtime: runtime)
        #expect(gdb.code == 2 && gdb.stderr.contains("give --board NAME to debug one"), "\(gdb.stderr)")
    }

    /// Each board's files go under boards/NAME/: two boards of one name (in
    /// two namespaces) are refused before anything starts.
    @Test func twoBoardsOfOneNameAreRefused() throws {
        let runtime = makeRuntimeDir()
        let spec = runtime + ".yaml"
        defer { for d in [runtime, spec, runtime + "-bundles"] { try? FileManager.default.removeItem(atPath: d) } }
        func board(_ namespace: String) -> String {
            """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: node, namespace: \(namespace)}
            spec:
              architecture: arm
              qemuConfig:
                machine: lm3s6965evb
                devices: [{name: console, type: serial}]
            """
        }
        try (board("one") + "\n---\n" + board("two")).write(toFile: spec, atomically: true, encoding: .utf8)
        let r = try vt(["run", "-f", spec, "--record", runtime + "-bundles", "--timeout", "30s", "--", "true"], runtime: runtime)
        #expect(r.code == 2 && r.stderr.contains("--record: two boards of this run are named node (in different namespaces)"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: runtime + "-bundles"))
    }

    /// `VTARGET_BUNDLE_ON_FAILURE` records a run of two boards (not on a
    /// bus) and keeps its bundle when the run fails; both replay.
    @Test func bundleOnFailureKeepsARunOfTwoBoards() throws {
        let runtime = makeRuntimeDir()
        let bundles = runtime + "-bundles"
        let spec = runtime + ".yaml"
        defer { for d in [runtime, bundles, spec] { try? FileManager.default.removeItem(atPath: d) } }
        func board(_ name: String, _ machine: String) -> String {
            """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: \(name)}
            spec:
              architecture: arm
              qemuConfig:
                machine: \(machine)
                drives: [{name: firmware, type: pflash, source: {configMap: {name: \(machine)-firmware}}}]
                devices: [{name: console, type: serial}]
            """
        }
        try (board("left", "lm3s6965evb") + "\n---\n" + board("right", "stm32vldiscovery")).write(toFile: spec, atomically: true, encoding: .utf8)
        let wait = "\(vtarget) wait --since-start --timeout 60s --for 'serial=echo ready'"
        let r = try finish(launch([
            "run", "-f", spec, "-f", "\(firmware)/lm3s6965evb-firmware.yaml", "-f", "\(firmware)/stm32vldiscovery-firmware.yaml",
            "--timeout", "120s", "--", "sh", "-c", "\(wait) left >/dev/null && \(wait) right >/dev/null && exit 3",
        ], runtime: runtime, environment: ["VTARGET_BUNDLE_ON_FAILURE": bundles]))
        #expect(r.code != 0 && r.stderr.contains("recorded the run: "), "\(r.stdout)\n\(r.stderr)")
        let replay = try vt(["replay", try RecordedBundle.only(in: bundles).path], runtime: runtime)
        #expect(replay.code == 0 && replay.stderr.contains("left/console: serial output identical")
                && replay.stderr.contains("right/console: serial output identical"), "\(replay.stdout)\n\(replay.stderr)")
        #expect(replay.stdout.contains("hello from"), "\(replay.stdout)")
    }
}
