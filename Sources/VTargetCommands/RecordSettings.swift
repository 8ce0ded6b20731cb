import ArgumentParser
import HostOS
import MachineCatalog
import QEMULaunch
import ReplayFormat
import ReplayRuntime
import TargetRuntime
import TargetSpec
import YAMLTree

/// `run --record DIR`, `--bundle-on-failure DIR` (or `VTARGET_BUNDLE_ON_FAILURE`) and
/// what they need: a private staging directory, the capture the session
/// fills and the writer that makes the `.vtb`. A plain value, so `run`'s
/// fast path (`RunRequest`) and a spec's `record:` make one without ArgumentParser.
struct RecordSettings: Equatable, Sendable {
    var recordDirectory: String?
    var failureDirectory: String?
    var noBundleOnFailure = false
    var includeImages = false

    /// What a spec's `record:` asks: `true` as `--record DIR`, `OnFailure` as `--bundle-on-failure DIR`.
    init(asSpecAsks always: Bool, directory: String) {
        if always { recordDirectory = directory } else { failureDirectory = directory }
    }

    init(recordDirectory: String? = nil, failureDirectory: String? = nil, noBundleOnFailure: Bool = false, includeImages: Bool = false) {
        self.recordDirectory = recordDirectory
        self.failureDirectory = failureDirectory
        self.noBundleOnFailure = noBundleOnFailure
        self.includeImages = includeImages
    }

    /// Instructions counted, the clock adjusted to the host's (QEMU's `auto`):
    /// guest time stays near real time, and a replay follows the log.
    static let icountShift = "auto"
    static let defaultImageLimit: UInt64 = 64 << 20
    /// A CI job turns recording on for every run with this variable. Not on
    /// by CI=true alone: under QEMU's record mode a guest asleep without a
    /// timer of its own takes serial input only at icount's 100 ms heartbeat,
    /// so recorded input is paced to one byte per 150 ms (`PacedInput`); a
    /// run that pushes kilobytes at such a guest (measured: 3000 bytes, 100 kB,
    /// pyserial's 254-byte round trip) would outlast its timeouts, and a run
    /// that passes must not fail because it was recorded.
    static let environmentVariable = "VTARGET_BUNDLE_ON_FAILURE"

    func validate() throws {
        if recordDirectory == "" { throw ValidationError("--record: empty; give the directory the bundle goes into") }
        if failureDirectory == "" { throw ValidationError("--bundle-on-failure: empty; give the directory the bundle goes into") }
        if noBundleOnFailure, failureDirectory != nil {
            throw ValidationError("--bundle-on-failure and --no-bundle-on-failure contradict each other; give one")
        }
    }

    struct Recorder {
        let capture: RunCapture
        let directory: String
        let onlyOnFailure: Bool
        let spec: [UInt8]
        let profile: [UInt8]?
        /// Every board's profile YAML by profile name (a run of several boards).
        let profiles: [String: [UInt8]]
        let decoding: BundleManifest.Decoding
        let imageLimit: UInt64

        func writer(qemu: BundleManifest.QEMUIdentity, junit: String?) -> BundleWriter {
            var w = BundleWriter(specYAML: spec, profileYAML: profile, junitPath: junit, vtargetVersion: VTarget.configuration.version,
                                 qemu: qemu, decoding: decoding, icountShift: RecordSettings.icountShift, imageLimit: imageLimit)
            w.profiles = profiles
            return w
        }
    }

    static func onCANBus(_ devices: [Device]) -> Bool {
        devices.contains { if case .can = $0.kind { true } else { false } }
    }

    /// The first name given twice, if any.
    static func repeatedName(_ names: [String]) -> String? {
        var seen = Set<String>()
        return names.first { !seen.insert($0).inserted }
    }

    /// Nil when nothing is recorded. Asked for explicitly, what cannot be
    /// recorded is refused (exit 2); by CI's default, it is skipped with a note.
    func start(_ loaded: InputSelection.Loaded, input: InputSelection, environment: [String: String], host: HostFacts) throws -> Recorder? {
        let explicit = recordDirectory ?? failureDirectory
        let fromEnvironment = noBundleOnFailure ? nil : environment[Self.environmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        guard let directory = explicit ?? fromEnvironment else { return nil }
        let flag = recordDirectory != nil ? "--record" : failureDirectory != nil ? "--bundle-on-failure" : Self.environmentVariable
        if let gap = environment[TargetProcess.recordedInputGapVariable], Quantity.parseDuration(gap) == nil {
            throw RuntimeError("\(TargetProcess.recordedInputGapVariable)=\(gap): expected \(Quantity.durationHint) (how far apart recorded input bytes go to the UART)",
                               code: .badInput)
        }
        var problem: String?
        let accels = loaded.runnables.compactMap { r in
            loaded.catalog.lookup(r.target.qemu.profileName).flatMap { LaunchPlanner(host: host).accelerator(for: r.target.qemu, profile: $0) }
        }
        if !loaded.vms.isEmpty {
            problem = "VMs are not recorded: QEMU's record/replay needs every disk behind blkreplay and the network behind filter-replay, "
                + "which vtarget does not set up; record a board (a QemuVirtualTarget) instead"
        } else if let twice = Self.repeatedName(loaded.runnables.map(\.name)) {
            // Each board's files go under boards/NAME/ in the bundle.
            problem = "two boards of this run are named \(twice) (in different namespaces); a recording keeps each board by name: rename one"
        } else if explicit == nil, loaded.runnables.contains(where: { Self.onCANBus($0.target.qemu.devices) }) {
            // Paced like serial input (one SLCAN byte per gap, about 2 s a frame), a busy bus outruns
            // the board and frames past 64 waiting are dropped: a run that passes would change.
            problem = "a board on a CAN bus gets its frames through a UART, and under QEMU's record mode they go one byte per "
                + "150 ms (about 2 s a frame), which a busy bus outruns; record it with --record if its bus is slow"
        } else if explicit == nil, let accel = accels.first(where: { $0 != "tcg" }) {
            problem = "a board of this run runs under \(accel), and QEMU records only under tcg (it counts instructions); set spec.qemuConfig.accel: tcg to record it"
        } else if input.files.contains("-") {
            problem = "the spec came from standard input, which cannot be read again for the bundle; give it as a file"
        }
        if let problem {
            if explicit != nil { throw RuntimeError("\(flag): \(problem)", code: .badInput) }
            printError("vtarget: not recording (\(flag)): \(problem)")
            return nil
        }
        var spec: [UInt8] = []
        for source in try InputFiles.sources(input.files, recursive: input.recursive) {
            if !spec.isEmpty { spec += Array("\n---\n".utf8) }
            spec += source.bytes
        }
        var profiles: [String: [UInt8]] = [:]
        for profileName in Set(loaded.runnables.map(\.target.qemu.profileName)) {
            for dir in InputFiles.machineDirectories(environment: environment, executable: Environment.executable) {
                if let bytes = try? InputFiles.readFile(dir + "/" + profileName + ".yaml") {
                    profiles[profileName] = bytes
                    break
                }
            }
        }
        let profile = loaded.runnables.first.flatMap { profiles[$0.target.qemu.profileName] }
        let staging = try StagingDirectory.make("record", environment: environment)
        return Recorder(capture: RunCapture(staging: staging), directory: directory, onlyOnFailure: recordDirectory == nil,
                        spec: spec, profile: profile, profiles: profiles,
                        decoding: .init(lenient: input.lenient, allowHostPaths: input.allowHostPaths, allowExtraArgs: input.allowExtraArgs),
                        imageLimit: includeImages ? .max : Self.defaultImageLimit)
    }
}
