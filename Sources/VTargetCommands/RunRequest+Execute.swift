#if canImport(Glibc)
import Glibc
#endif
import MachineCatalog
import QEMULaunch
import Endpoints
import ReplayFormat
import ReplayRuntime
import Supervisor
import InstanceContract
import HostOS
import TargetRuntime
import TargetSpec
import YAMLTree

extension RunRequest {
    func execute() async throws {
        let env = Environment.variables
        let shim = try shimArguments()
        var input = self.input
        var noSandbox = self.noSandbox
        var ttl = self.ttl
        if let shim {
            // The shim's settings are the supervisor's, whatever else argv says.
            input.files = [shim.specFile]
            input.lenient = shim.lenient
            input.allowHostPaths = shim.allowHostPaths
            input.allowExtraArgs = shim.allowExtraArgs
            noSandbox = !shim.sandbox
            ttl = shim.ttlMilliseconds.map { "\($0)ms" }
        }
        var loaded = try input.load(environment: env, relativeTo: shim?.relativeTo)
        // Checked before anything starts: the bus join that reads it runs beside QEMU, too late to refuse cleanly.
        _ = try CANBusHost.remoteBuses(environment: env)
        let base = RuntimeDirectory.base(environment: env)
        let dropping = !noSandbox && QEMUSandbox.isRoot
        try RuntimeDirectory.ensurePrivate(base, traversable: dropping)
        var supervised: SupervisedInstance?
        let runDir: String
        if let shim {
            // Started by the supervisor: one instance, in its own lasting directory.
            guard Self.waitForGo() else { return }
            loaded.runnables = loaded.runnables.filter { "\($0.namespace)/\($0.name)" == shim.instance }
            loaded.vms = loaded.vms.filter { "\($0.namespace)/\($0.name)" == shim.instance }
            guard let one = loaded.runnables.first.map({ ($0.namespace, $0.name) }) ?? loaded.vms.first.map({ ($0.namespace, $0.name) }) else {
                throw RuntimeError("no instance \(shim.instance) in the spec", code: .notFound)
            }
            runDir = InstanceLayout.namespaceDirectory(runtime: base, namespace: one.0)
            try RuntimeDirectory.ensurePrivate(runDir, traversable: dropping)
            let layout = InstanceLayout.supervised(runtime: base, namespace: one.0, name: one.1)
            supervised = SupervisedInstance(layout: layout, statusPath: shim.statusFile, snapshot: shim.poolSnapshot)
            supervised?.startPaused = shim.startPaused
            RuntimeDirectory.removeTree(layout.directory)
        } else {
            runDir = InstanceLayout.runDirectory(runtime: base, pid: getpid())
            RuntimeDirectory.removeTree(runDir)
            try RuntimeDirectory.ensurePrivate(runDir, traversable: dropping)
        }
        defer { if supervised == nil { RuntimeDirectory.removeTree(runDir) } }

        if noSandbox {
            printError("vtarget: WARNING: --no-sandbox: QEMU runs unconfined, with your privileges, on untrusted firmware")
        } else {
            let missing = await QEMUSandbox.protections(enabled: true).filter { !$0.active }.map(\.name)
            if !missing.isEmpty { printError("vtarget: sandbox: not available here: " + missing.joined(separator: ", ") + " (vtarget doctor says why)") }
        }
        var session = RunSession(config: RunConfiguration(
            until: until, timeoutSeconds: timeout.flatMap(Quantity.parseDuration),
            ttlSeconds: ttl.flatMap(Quantity.parseDuration), command: command,
            environment: env, host: await HostProbe.facts(environment: env, probeKVM: loaded.mayUseKVM),
            launch: LaunchOptions(qemuSandbox: !noSandbox, passImagesAsFDs: !noSandbox), sandbox: !noSandbox), catalog: loaded.catalog)
        var rotation = SerialLog.Rotation()
        if let v = env["VTARGET_LOG_MAX_BYTES"].flatMap(Quantity.parseBytes) { rotation.maxBytes = Int(v) }
        if let v = env["VTARGET_LOG_FILES"].flatMap(Int.init) { rotation.files = v }
        session.config.logRotation = rotation
        session.config.junitPath = junit.map(InputFiles.absolute)
        session.config.supervised = supervised
        session.config.sidecarOwner = shim?.sidecarOwner
        let dirs = loaded.directories
        let recorder = try recorder(loaded, input: input, shim: shim, environment: env, host: session.config.host)
        if let recorder {
            session.config.capture = recorder.capture
            session.config.launch.recordReplay = RecordReplay(mode: .record, logFile: "replay.bin", icountShift: RecordSettings.icountShift)
        }
        defer { if let recorder { RuntimeDirectory.removeTree(recorder.capture.staging) } }
        let prepared = try await session.prepare(loaded.runnables, runDirectory: runDir) { dirs[$0.location.file] }
            + session.prepareVMs(loaded.vms, runDirectory: runDir)
        var qemu: BundleManifest.QEMUIdentity?
        if recorder != nil, let binary = prepared.first?.1.binary {
            qemu = try await InstalledQEMU.identify(binary: binary, environment: env).identity
        }
        let code = await session.run(prepared)
        if let recorder, let qemu, Self.keeps(recorder, code: code, supervised: shim != nil) {
            do {
                let path = try await recorder.writer(qemu: qemu, junit: session.config.junitPath).write(recorder.capture, into: recorder.directory)
                printError("vtarget: recorded the run: \(path) (vtarget replay \(path))")
                if shim != nil {
                    for old in BundleShelf.prune(recorder.directory) { printError("vtarget: removed the instance's oldest bundle \(old) (its newest \(BundleShelf.kept) are kept)") }
                }
            } catch {
                printError("vtarget: no bundle written: \(error)")
            }
        }
        if code != 0 { throw CommandExit(code: code) }
    }

    /// Where a spec's `record: true` puts bundles when `run` is given no directory.
    static let specRecordDirectory = "vtarget-bundles"

    /// Whether the run's bundle is written. Only on failure: for `run`, an
    /// exit other than 0 (`--bundle-on-failure`); for a shim (`record:
    /// OnFailure`), a run that Failed or Expired, not one the user stopped
    /// or deleted (SIGTERM, exit 143), which is no failure of the target.
    static func keeps(_ recorder: RecordSettings.Recorder, code: Int32, supervised: Bool) -> Bool {
        guard recorder.onlyOnFailure else { return true }
        guard supervised else { return code != 0 }
        return [InstancePhase.failed, .expired].map(\.rawValue).contains(recorder.capture.collected.phase)
    }

    /// What records this run, if anything: the flags, else the spec's
    /// `record: true` or `OnFailure` (into ./vtarget-bundles, as `--record`
    /// or `--bundle-on-failure`). A shim records only for what its spec
    /// says, into the directory the supervisor gave, with its
    /// staging there too: a shim killed mid-way leaves nothing in /tmp, and
    /// the supervisor clears what it left when it sees it end (`BundleShelf`). The
    /// supervisor's own environment (VTARGET_BUNDLE_ON_FAILURE) never turns
    /// a shim's recording on.
    private func recorder(_ loaded: InputSelection.Loaded, input: InputSelection, shim: ShimArguments?, environment env: [String: String],
                          host: HostFacts) throws -> RecordSettings.Recorder? {
        // What the specs ask; `true` wins over `OnFailure` (one setting for the whole run, every board of it).
        let modes = loaded.runnables.compactMap { $0.lifecycle.record?.value }.filter { $0 != .off }
        let always = modes.isEmpty ? nil : modes.contains(.always)
        guard let shim else {
            let flagged = recording.recordDirectory != nil || recording.failureDirectory != nil
            guard let always, !flagged else { return try recording.start(loaded, input: input, environment: env, host: host) }
            var settings = RecordSettings(asSpecAsks: always, directory: Self.specRecordDirectory)
            settings.includeImages = recording.includeImages
            return try settings.start(loaded, input: input, environment: env, host: host)
        }
        guard let always, let directory = shim.bundleDirectory else { return nil }
        try BundleShelf.prepare(directory)
        var staged = env
        staged["TMPDIR"] = BundleShelf.stagingParent(directory)
        // Explicit, so VTARGET_BUNDLE_ON_FAILURE is not read.
        return try RecordSettings(asSpecAsks: always, directory: directory).start(loaded, input: input, environment: staged, host: host)
    }

    /// The supervisor writes one byte on stdin once it has recorded our pid;
    /// end of file means it died before that, and nothing must start.
    static func waitForGo() -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = read(0, &byte, 1)
            if n == 1 { return true }
            if n < 0 && errno == EINTR { continue }
            return false
        }
    }
}
