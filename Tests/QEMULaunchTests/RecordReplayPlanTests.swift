import TestSupport
import YAMLTree
import Testing
@testable import QEMULaunch
@testable import TargetSpec

/// `LaunchOptions.recordReplay`: QEMU's `-icount ...,rr=` option, and only with it.
@Suite struct RecordReplayPlanTests {
    static let board = targetYAML("rec", """
        machine: lm3s6965evb
        drives: [{name: firmware, type: pflash, source: {file: fw.elf}}]
        devices: [{name: uart0, type: serial}]
        """)

    @Test func recordingAddsIcountWithTheLogRelativeToQEMUsDirectory() throws {
        let plain = try plans(Self.board, file: "b.yaml")[0]
        let rr = RecordReplay(mode: .record, logFile: "/run/vt/rec/replay.bin", icountShift: "auto")
        let recorded = try plans(Self.board, file: "b.yaml", launch: LaunchOptions(recordReplay: rr))[0]
        #expect(!plain.argv.contains("-icount"))
        #expect(plain.recordReplay == nil)
        let i = try #require(recorded.argv.firstIndex(of: "-icount"))
        #expect(recorded.argv[i + 1] == "shift=auto,rr=record,rrfile=./replay.bin")
        #expect(recorded.recordReplay == rr)
        // Nothing else moves: a replay's argv is the recording's with rr= changed.
        var without = recorded.argv
        without.removeSubrange(i...(i + 1))
        #expect(without == plain.argv)
    }

    @Test func replayWithSnapshotNamesIt() throws {
        let rr = RecordReplay(mode: .replay, logFile: "/run/vt/rec/replay.bin", icountShift: "7", snapshot: "init")
        let p = try plans(Self.board, file: "b.yaml", launch: LaunchOptions(snapshotImage: "/run/vt/rec/snapshot.qcow2", recordReplay: rr))[0]
        let i = try #require(p.argv.firstIndex(of: "-icount"))
        #expect(p.argv[i + 1] == "shift=7,rr=replay,rrfile=./replay.bin,rrsnapshot=init")
    }

    @Test func aPlainLogNameIsInTheInstanceDirectory() throws {
        let p = try plans(Self.board, file: "b.yaml", launch: LaunchOptions(recordReplay: RecordReplay(mode: .record, logFile: "replay.bin")))[0]
        #expect(p.recordReplay?.logFile == "/run/vt/rec/replay.bin")
        #expect(p.argv.contains("shift=auto,rr=record,rrfile=./replay.bin"))
    }

    @Test func snapshotWithoutScratchImageIsRefused() throws {
        let rr = RecordReplay(mode: .record, logFile: "/run/vt/rec/replay.bin", snapshot: "init")
        #expect(throws: DiagnosticError.self) { try plans(Self.board, file: "b.yaml", launch: LaunchOptions(recordReplay: rr)) }
    }

    @Test func kvmCannotRecord() throws {
        let yaml = targetYAML("k", """
            machine: pc
            accel: kvm
            """)
        let rr = RecordReplay(mode: .record, logFile: "/run/vt/k/replay.bin")
        do {
            _ = try plans(yaml, file: "k.yaml", launch: LaunchOptions(recordReplay: rr), host: HostFacts(architecture: .x86_64, kvmUsable: true))
            Issue.record("planned")
        } catch let e as DiagnosticError {
            #expect(e.description.contains("accel tcg"))
        }
    }
}
