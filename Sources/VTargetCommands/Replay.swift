import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import InstanceContract
import QEMULaunch
import ReplayFormat
import ReplayRuntime
import TargetRuntime
import TargetSpec

/// `vtarget replay BUNDLE`: the recorded run again, from QEMU's replay log,
/// in the same sandbox as a run and needing no network; then the verdict.
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-run a recorded bundle (.vtb) offline, byte for byte, and say whether the serial output is identical.",
        discussion: """
            QEMU replays its own log: every serial byte the recording received arrives again at the same \
            instruction, so nothing is typed and no network is needed. A bundle of several boards replays each \
            alone, one after another (its log holds the CAN frames it got too), the verdicts named BOARD/DEVICE; \
            --board replays one. The replayed output streams to stdout; the verdict goes to stderr. Exit code: 0 identical, 1 different, 2 a bundle that is damaged, \
            made by a newer vtarget, or recorded with another QEMU binary than the one on PATH.
            """)

    @Argument(help: "The bundle, as `vtarget run --record` or `--bundle-on-failure` wrote it.")
    var bundle: String

    @Option(help: "Stop at this serial byte OFFSET (a number), or once the output matches this REGEX; compare up to there.")
    var until: String?

    @Option(help: "Of a bundle of several boards, replay only this one (default: each in turn).")
    var board: String?

    @Flag(help: "Start gdb-multiarch attached to the replay, which waits at the first instruction; the replay ends with gdb.")
    var gdb = false

    @Option(help: "An ELF with the firmware's symbols for --gdb (default: the firmware in the bundle).")
    var firmware: String?

    @Flag(name: .customLong("no-sandbox"), help: "Debugging only: QEMU runs without vtarget's sandbox.")
    var noSandbox = false

    @Argument(parsing: .postTerminator, help: "With --gdb: arguments passed to gdb (e.g. -batch -ex 'reverse-stepi').")
    var gdbArguments: [String] = []

    var untilOffset: Int? { until.flatMap { Int($0) } }

    func validate() throws {
        if let until {
            if until.isEmpty { throw ValidationError("--until: empty; give a byte offset (e.g. 1024) or a regular expression") }
            if let n = Int(until), n <= 0 { throw ValidationError("--until: offset \(n); give a byte offset above 0") }
            if Int(until) == nil, (try? Regex(until)) == nil { throw ValidationError("--until: neither a byte offset nor a valid regular expression: \(until)") }
        }
        if !gdbArguments.isEmpty, !gdb { throw ValidationError("arguments after -- go to gdb: give --gdb too") }
        if firmware != nil, !gdb { throw ValidationError("--firmware is for --gdb's symbols: give --gdb too") }
    }

    func run() async throws {
        let env = Environment.variables
        let workspace = try StagingDirectory.make("replay", environment: env)
        defer { RuntimeDirectory.removeTree(workspace) }
        let contents = workspace + "/bundle"
        mkdir(contents, 0o700)
        let manifest = try await BundleArchive.open(bundle, into: contents)
        let installed = try await InstalledQEMU.identify(binary: manifest.qemu.binary, environment: env)
        if installed.identity.version != manifest.qemu.version || (!manifest.qemu.sha256.isEmpty && installed.identity.sha256 != manifest.qemu.sha256) {
            throw RuntimeError("""
                the bundle was recorded with \(manifest.qemu.binary) "\(manifest.qemu.version)" (sha256 \(manifest.qemu.sha256)); \
                the one here, \(installed.path), is "\(installed.identity.version)" (sha256 \(installed.identity.sha256)): \
                a replay is exact only on the same QEMU binary; install that one, or put it first on PATH
                """, code: .badInput)
        }
        let names = manifest.boardNames
        if let board, !names.contains(board) {
            throw RuntimeError("--board \(board): the bundle has no such board; it has \(names.joined(separator: ", "))", code: .badInput)
        }
        if gdb, board == nil, names.count > 1 {
            throw RuntimeError("--gdb: the bundle has \(names.count) boards (\(names.joined(separator: ", "))); give --board NAME to debug one", code: .badInput)
        }
        // Each board's QEMU recorded its own log, every input it got (the
        // frames from its bus too), so each replays alone, one after another.
        var identical = true
        for name in board.map({ [$0] }) ?? names {
            if try await !replay(board: name, of: manifest, contents: contents, workspace: workspace, environment: env) { identical = false }
        }
        printError("vtarget: the recorded run ended with exit \(manifest.verdict.exitCode): \(manifest.verdict.reason)")
        if !identical { throw CommandExit(code: 1) }
    }

    /// Replays board `name` and prints a verdict per serial device (named
    /// `BOARD/DEV` in a bundle of several); whether every one was identical.
    private func replay(board name: String, of manifest: BundleManifest, contents: String, workspace: String,
                        environment env: [String: String]) async throws -> Bool {
        let staging = workspace + "/replay-" + name
        mkdir(staging, 0o700)
        let replayed = try await replay(manifest, board: name, contents: contents, workspace: staging, environment: env)
        let several = manifest.boards != nil
        var identical = true
        for file in manifest.files(board: name) where file.role == .serialOutput {
            let device = file.device ?? file.path
            var recorded = Array(FileManager.default.contents(atPath: contents + "/" + file.path) ?? Data())
            var got = replayed[device] ?? []
            if let n = untilOffset {
                recorded = Array(recorded.prefix(n))
                got = Array(got.prefix(n))
            } else if until != nil, got.count < recorded.count {
                recorded = Array(recorded.prefix(got.count))
            }
            let verdict = SerialComparison.compare(recorded: recorded, replayed: got)
            if case .differs = verdict { identical = false }
            printError("vtarget: \(several ? name + "/" : "")\(device): \(verdict.summary)")
        }
        return identical
    }

    /// Plans the bundled spec as `run` would, with QEMU replaying the log,
    /// refuses a plan that is not the recorded one, runs it; the serial bytes.
    private func replay(_ manifest: BundleManifest, board name: String, contents: String, workspace: String,
                        environment env: [String: String]) async throws -> [String: [UInt8]] {
        var flags = ["-f", contents + "/" + manifest.file(.spec)!.path]
        if let d = manifest.decoding {
            if d.lenient { flags.append("--lenient") }
            if d.allowHostPaths { flags.append("--allow-host-paths") }
            if d.allowExtraArgs { flags.append("--allow-extra-args") }
        }
        let input = try InputOptions.parse(flags)
        var loaded = try input.load(environment: env)
        guard loaded.vms.isEmpty,
              var target = loaded.runnables.first(where: { $0.name == name && (manifest.boards != nil || $0.namespace == manifest.instance.namespace) }) else {
            throw RuntimeError("the bundle's spec has no board \(manifest.instance.namespace)/\(name), which its manifest names", code: .badInput)
        }
        // The log decides what happens and when: nothing is sent, and nothing
        // timed by the wall clock (readiness, tests, TTLs) may end the replay early.
        target.lifecycle.tests = []
        target.lifecycle.sidecars = []
        target.lifecycle.readiness = nil
        target.lifecycle.ttlSeconds = nil
        target.lifecycle.idleTTLSeconds = nil
        loaded.runnables = [target]

        let base = RuntimeDirectory.base(environment: env)
        let dropping = !noSandbox && QEMUSandbox.isRoot
        try RuntimeDirectory.ensurePrivate(base, traversable: dropping)
        let runDir = InstanceLayout.runDirectory(runtime: base, pid: getpid())
        RuntimeDirectory.removeTree(runDir)
        try RuntimeDirectory.ensurePrivate(runDir, traversable: dropping)
        defer { RuntimeDirectory.removeTree(runDir) }

        let capture = RunCapture(staging: workspace, stopAfterBytes: untilOffset)
        var session = RunSession(config: RunConfiguration(
            until: untilOffset == nil ? until : nil, environment: env,
            host: await HostProbe.facts(environment: env, probeKVM: false),
            launch: LaunchOptions(qemuSandbox: !noSandbox, passImagesAsFDs: !noSandbox,
                                  recordReplay: RecordReplay(mode: .replay, logFile: "replay.bin", icountShift: manifest.instance.icountShift)),
            sandbox: !noSandbox), catalog: loaded.catalog)
        session.config.capture = capture
        let dirs = loaded.directories
        var prepared = try await session.prepare(loaded.runnables, runDirectory: runDir) { dirs[$0.location.file] }
        guard var plan = prepared.first?.1, let log = plan.recordReplay?.logFile else {
            throw RuntimeError("the bundle's board could not be planned here", code: .badInput)
        }
        try check(plan, against: manifest, board: name, contents: contents)
        do {
            try FileManager.default.copyItem(atPath: contents + "/" + manifest.file(.replayLog, board: name)!.path, toPath: log)
        } catch {
            throw RuntimeError("cannot place the replay log in \(plan.workingDirectory): \(error)")
        }
        if let snapshot = manifest.file(.replaySnapshot, board: name), let image = plan.snapshotImage {
            // The recording's image, with the snapshot QEMU loads first.
            unlink(image)
            do { try FileManager.default.copyItem(atPath: contents + "/" + snapshot.path, toPath: image) } catch {
                throw RuntimeError("cannot place the start snapshot in \(plan.workingDirectory): \(error)")
            }
        }
        if dropping { try QEMUSandbox.handOver(plan.workingDirectory) }
        if gdb, manifest.file(.replaySnapshot, board: name) == nil {
            printError("vtarget: this bundle has no start snapshot (the board's snapshots do not load, or it has a writable raw drive): "
                       + "gdb steps and breaks forward, but reverse-stepi and reverse-continue fail")
        }
        if gdb {
            // QEMU's stub on a socket in its own directory; the replay waits for gdb's `continue`.
            plan.arguments += ["-chardev", "socket,id=vt-gdb,path=./gdb.sock,server=on,wait=off", "-gdb", "chardev:vt-gdb"]
            plan.gdbSocketPath = plan.workingDirectory + "/gdb.sock"
            prepared[0].1 = plan
            let symbols = firmware ?? manifest.files(board: name).first { $0.role == .firmware }.map { contents + "/" + $0.path }
            session.config.command = GDBInvocation(program: "gdb-multiarch", symbols: symbols, socket: plan.gdbSocketPath!, extra: gdbArguments).argv
            session.config.startPaused = true
        }
        let code = await session.run(prepared)
        if gdb, code != 0 { printError("vtarget: gdb or the replay ended with \(code)") }
        return capture.output(of: name)
    }

    /// The replay's QEMU must be given what the recording's was: the same
    /// arguments (but `rr=replay`) and the same firmware bytes.
    private func check(_ plan: LaunchPlan, against manifest: BundleManifest, board name: String, contents: String) throws {
        if let launch = manifest.file(.launch, board: name),
           let data = FileManager.default.contents(atPath: contents + "/" + launch.path),
           let recorded = try? JSONDecoder().decode([String].self, from: data) {
            let expected = recorded.map { $0.contains("rr=record") ? $0.replacingOccurrences(of: "rr=record", with: "rr=replay") : $0 }
            if plan.arguments != expected {
                let i = Array(zip(plan.arguments, expected)).firstIndex { $0 != $1 } ?? min(plan.arguments.count, expected.count)
                let here = i < plan.arguments.count ? plan.arguments[i] : "(end)"
                let there = i < expected.count ? expected[i] : "(end)"
                throw RuntimeError("QEMU's arguments here differ from the recording's at argument \(i): \"\(here)\" here, \"\(there)\" recorded; "
                                   + "the machine profiles or this vtarget differ from the recording's (vtarget \(manifest.vtargetVersion))", code: .badInput)
            }
        }
        for f in manifest.files(board: name) where f.role == .firmware {
            let name = String(f.path.split(separator: "/").last ?? "")
            let path = plan.workingDirectory + "/" + name
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let digest = try FileDigest.sha256(path).digest
            if digest != f.sha256 {
                throw RuntimeError("the firmware QEMU would run here (\(name), sha256 \(digest)) is not the recorded one (sha256 \(f.sha256))", code: .badInput)
            }
        }
    }
}
