import Foundation
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import ReplayFormat
import TargetRuntime

/// Turns a recorded run (its `RunCapture`, spec and reports) into one
/// `.vtb` in the chosen directory.
public struct BundleWriter: Sendable {
    /// The YAML the run read, as one stream of documents.
    public var specYAML: [UInt8]
    /// `machines/NAME.yaml` of the target's profile, when found.
    public var profileYAML: [UInt8]?
    /// With several boards, each board's profile YAML by profile name
    /// (`boards/NAME/machine.yaml`), when found.
    public var profiles: [String: [UInt8]] = [:]
    /// The JUnit report the run wrote (`--junit`), when it did.
    public var junitPath: String?
    public var vtargetVersion: String
    public var qemu: BundleManifest.QEMUIdentity
    public var decoding: BundleManifest.Decoding
    public var icountShift: String
    /// Files QEMU ran (firmware) larger than this go in as their digest only
    /// (`--include-images` raises it).
    public var imageLimit: UInt64

    public init(specYAML: [UInt8], profileYAML: [UInt8]?, junitPath: String?, vtargetVersion: String, qemu: BundleManifest.QEMUIdentity,
                decoding: BundleManifest.Decoding, icountShift: String, imageLimit: UInt64) {
        self.specYAML = specYAML
        self.profileYAML = profileYAML
        self.junitPath = junitPath
        self.vtargetVersion = vtargetVersion
        self.qemu = qemu
        self.decoding = decoding
        self.icountShift = icountShift
        self.imageLimit = imageLimit
    }

    /// Writes the bundle into `directory` (made when missing); returns its path.
    /// One board: the layout and manifest of format 1. Several: format 2,
    /// the spec shared, each board's files under `boards/NAME/` and named
    /// by `board` in the manifest, which lists the boards.
    public func write(_ capture: RunCapture, into directory: String) async throws(RuntimeError) -> String {
        let c = capture.collected
        guard !c.boards.isEmpty else {
            throw RuntimeError("no bundle: the run had no board")
        }
        for b in c.boards where b.replayLog == nil {
            throw RuntimeError("no bundle: QEMU of \(b.name) left no replay log (it did not start, or was killed before it wrote one)")
        }
        let several = c.boards.count > 1
        if Set(c.boards.map(\.binary)).count > 1 {
            throw RuntimeError("no bundle: the boards ran different QEMU binaries (\(Set(c.boards.map(\.binary)).sorted().joined(separator: ", "))); a bundle names one")
        }
        let staging = capture.staging
        var files: [BundleFile] = []
        func add(_ rel: String, _ role: BundleFile.Role, device: String? = nil, board: String? = nil) throws(RuntimeError) {
            let (digest, size) = try FileDigest.sha256(staging + "/" + rel)
            files.append(BundleFile(path: rel, role: role, device: device, size: size, sha256: digest, board: board))
        }
        func put(_ rel: String, _ bytes: [UInt8], _ role: BundleFile.Role, device: String? = nil, entries: Int? = nil, board: String? = nil) throws(RuntimeError) {
            let path = staging + "/" + rel
            if let slash = rel.lastIndex(of: "/") {
                try? FileManager.default.createDirectory(atPath: staging + "/" + String(rel[..<slash]), withIntermediateDirectories: true)
            }
            try BundleArchive.writeFile(path, bytes)
            try add(rel, role, device: device, board: board)
            files[files.count - 1].entries = entries
        }
        try put("spec.yaml", specYAML, .spec)
        if let profileYAML, !several { try put("machine.yaml", profileYAML, .machineProfile) }
        var omitted: [BundleManifest.OmittedImage] = []
        for b in c.boards {
            let p = b.prefix
            let board = several ? b.name : nil
            if several, let yaml = profiles[b.profile] { try put(p + "machine.yaml", yaml, .machineProfile, board: board) }
            try put(p + "qemu/argv.json", Self.json(b.arguments), .launch, board: board)
            precondition(b.replayLog == staging + "/" + p + "replay.bin")
            try add(p + "replay.bin", .replayLog, board: board)
            if b.snapshotImage != nil { try add(p + "snapshot.qcow2", .replaySnapshot, board: board) }
            for name in b.qemuFiles {
                let rel = p + "qemu/" + name
                let (digest, size) = try FileDigest.sha256(staging + "/" + rel)
                if size > imageLimit {
                    omitted.append(BundleManifest.OmittedImage(name: several ? b.name + "/" + name : name, sha256: digest, size: size))
                    unlink(staging + "/" + rel)
                } else {
                    files.append(BundleFile(path: rel, role: .firmware, size: size, sha256: digest, board: board))
                }
            }
            for (source, chunks) in capture.chunks.filter({ $0.key.target == b.name }).sorted(by: { $0.key < $1.key }) {
                let device = source.device
                try put(p + "serial/\(device).out", chunks.flatMap(\.bytes), .serialOutput, device: device, board: board)
                // One line per piece QEMU wrote: monotonic seconds, offset, bytes (escaped).
                var offset = 0
                var log = ""
                for ch in chunks {
                    log += String(format: "%.6f", ch.seconds) + " \(offset) \"" + SerialComparison.escape(ch.bytes) + "\"\n"
                    offset += ch.bytes.count
                }
                try put(p + "serial/\(device).log", Array(log.utf8), .serialLog, device: device, board: board)
            }
            for trace in Self.traces(capture, board: b.name, prefix: p) {
                try put(trace.path, Array(trace.text.utf8), trace.role, device: trace.device, entries: trace.entries, board: board)
            }
        }
        if let junitPath, let bytes = FileManager.default.contents(atPath: junitPath) {
            try put("junit.xml", Array(bytes), .junit)
        }
        var u = utsname()
        uname(&u)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in String(decoding: raw.prefix { byte in byte != 0 }, as: UTF8.self) }
        }
        var manifest = BundleManifest(
            formatVersion: several ? BundleManifest.multiBoardFormatVersion : 1,
            createdAt: Self.now(), vtargetVersion: vtargetVersion, qemu: qemu,
            host: .init(kernel: field(u.sysname) + " " + field(u.release), architecture: field(u.machine)),
            instance: .init(name: c.name, namespace: c.namespace, machine: c.profile, icountShift: icountShift),
            verdict: .init(exitCode: c.exitCode, reason: c.reason), files: files, omittedImages: omitted)
        manifest.decoding = decoding
        manifest.traceOrigin = Self.rfc3339(microseconds: capture.wallStartMicroseconds)
        if several { manifest.boards = c.boards.map { .init(name: $0.name, machine: $0.profile) } }
        do { _ = try BundleManifest.decode(manifest.encoded()) } catch {
            throw RuntimeError("no bundle: its manifest would not read back: \(error)")
        }
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw RuntimeError("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let stamp = manifest.createdAt.filter { $0.isNumber }
        let out = directory + "/\(c.namespace)-\(c.name)-\(stamp)-\(getpid()).\(BundleArchive.fileExtension)"
        try await BundleArchive.write(manifest, staging: staging, to: out)
        return out
    }

    /// One trace file to write: its text and how many lines (frames) it holds.
    public struct Trace: Sendable, Equatable {
        public var path: String
        public var role: BundleFile.Role
        public var device: String?
        public var text: String
        public var entries: Int

        /// `path` under `traces/` by convention (`traces/qmp.log`), unique in the bundle.
        public init(path: String, role: BundleFile.Role, device: String? = nil, text: String, entries: Int) {
            self.path = path
            self.role = role
            self.device = device
            self.text = text
            self.entries = entries
        }
    }

    /// The serial input of each device that got any, as
    /// `traces/serial-DEV.in.log` (`SerialInputTrace`), and the frames of
    /// each CAN device of the board, as `traces/can-DEV.log` (`CandumpLog`,
    /// stamped with wall-clock times from the capture's start), and the QMP
    /// conversation through the board's proxy, as `traces/qmp.log`
    /// (`QMPTranscriptLog`). A device that saw nothing has no file: the
    /// trace would say nothing. Board `board`'s traces, under `prefix` (its
    /// directory in the bundle).
    static func traces(_ capture: RunCapture, board: String, prefix: String) -> [Trace] {
        func us(_ seconds: Double) -> Int64 { Int64((seconds * 1e6).rounded()) }
        var out: [Trace] = []
        for (source, chunks) in capture.inputs.filter({ $0.key.target == board }).sorted(by: { $0.key < $1.key }) where !chunks.isEmpty {
            let device = source.device
            let text = chunks.map { SerialInputTrace.line(microseconds: us($0.seconds), bytes: $0.bytes) + "\n" }.joined()
            out.append(Trace(path: prefix + "traces/serial-\(device).in.log", role: .serialInput, device: device, text: text, entries: chunks.count))
        }
        let origin = capture.wallStartMicroseconds
        let byDevice = Dictionary(grouping: capture.frames.filter { $0.target == board }, by: \.device)
        for (device, events) in byDevice.sorted(by: { $0.key < $1.key }) {
            // Stable: frames stamped alike stay in the order they were passed on.
            let ordered = events.enumerated().sorted { ($0.element.seconds, $0.offset) < ($1.element.seconds, $1.offset) }.map(\.element)
            let text = ordered.map { e in
                CandumpLog.line(microseconds: origin + us(e.seconds), interface: e.bus,
                                frame: .init(id: e.id, extended: e.extended, remote: e.remote, dlc: e.dlc, data: e.data),
                                direction: e.sent ? .sent : .received) + "\n"
            }.joined()
            out.append(Trace(path: prefix + "traces/can-\(device).log", role: .canTrace, device: device, text: text, entries: ordered.count))
        }
        let qmp = capture.qmp.filter { $0.target == board }
        if !qmp.isEmpty {
            let text = qmp.map { l in
                let way: QMPTranscriptLog.Way = switch l.direction {
                case .toQEMU: .toQEMU
                case .fromQEMU: .fromQEMU
                case .event: .event
                }
                return QMPTranscriptLog.line(microseconds: us(l.seconds), client: l.client, way: way, json: l.json) + "\n"
            }.joined()
            out.append(Trace(path: prefix + "traces/qmp.log", role: .qmpTrace, text: text, entries: qmp.count))
        }
        return out
    }

    /// `2026-12-01T01:02:03.123456Z`.
    static func rfc3339(microseconds: Int64) -> String {
        var t = time_t(microseconds / 1_000_000)
        var p = tm()
        gmtime_r(&t, &p)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", p.tm_year + 1900, p.tm_mon + 1, p.tm_mday, p.tm_hour, p.tm_min, p.tm_sec,
                      Int32(microseconds % 1_000_000))
    }

    static func json(_ strings: [String]) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted]
        return Array((try? encoder.encode(strings)) ?? Data("[]".utf8))
    }

    static func now() -> String {
        var t = time(nil)
        var p = tm()
        gmtime_r(&t, &p)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", p.tm_year + 1900, p.tm_mon + 1, p.tm_mday, p.tm_hour, p.tm_min, p.tm_sec)
    }
}
