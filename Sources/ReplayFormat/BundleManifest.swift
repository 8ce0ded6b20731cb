#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `manifest.json` at the root of a bundle: everything `replay` and
/// `bundle show` need to know before they trust any other file in it.
public struct BundleManifest: Codable, Sendable, Equatable {
    /// Bumped when a reader of an older version could misread a bundle.
    /// 2: several boards (`boards`). A one-board bundle is still written
    /// as version 1, byte for byte what it was; a bundle of several is
    /// written as 2, so a vtarget that reads only 1 refuses it by its
    /// version ("use a newer vtarget") instead of failing on its files.
    public static let currentFormatVersion = 2
    /// The version a bundle of several boards needs (`boards`).
    public static let multiBoardFormatVersion = 2
    public static let fileName = "manifest.json"

    public var formatVersion: Int
    /// RFC 3339, UTC.
    public var createdAt: String
    public var vtargetVersion: String
    public var qemu: QEMUIdentity
    public var host: HostIdentity
    public var instance: InstanceIdentity
    public var verdict: Verdict
    public var files: [BundleFile]
    /// Images left out for their size (`--include-images` keeps them):
    /// replay needs the same bytes, found by digest.
    public var omittedImages: [OmittedImage]
    /// How the spec was read; a replay reads it the same way.
    public var decoding: Decoding?
    /// The wall-clock time (RFC 3339, UTC, microseconds) of second 0 of the
    /// monotonic stamps in `serial/DEV.log` and `traces/serial-DEV.in.log`;
    /// the CAN traces carry wall-clock times from it. Absent before traces.
    public var traceOrigin: String?
    /// Present only when the run had several boards (format 2): each one's
    /// QEMU recorded its own log, replayed alone; each board's files are
    /// in `files` with its name in `board`, under `boards/NAME/`. `instance`
    /// then names the first board.
    public var boards: [Board]?

    /// One board of a recording of several.
    public struct Board: Codable, Sendable, Equatable {
        /// The target's `metadata.name`; a path part of its files.
        public var name: String
        /// The machine profile it ran.
        public var machine: String

        public init(name: String, machine: String) {
            self.name = name
            self.machine = machine
        }
    }

    /// Every board's name, in order: the `boards` list, else the one `instance`.
    public var boardNames: [String] { boards?.map(\.name) ?? [instance.name] }

    public struct Decoding: Codable, Sendable, Equatable {
        public var lenient: Bool
        public var allowHostPaths: Bool
        public var allowExtraArgs: Bool

        public init(lenient: Bool, allowHostPaths: Bool, allowExtraArgs: Bool) {
            self.lenient = lenient
            self.allowHostPaths = allowHostPaths
            self.allowExtraArgs = allowExtraArgs
        }
    }

    public init(formatVersion: Int = BundleManifest.currentFormatVersion, createdAt: String, vtargetVersion: String,
                qemu: QEMUIdentity, host: HostIdentity, instance: InstanceIdentity, verdict: Verdict,
                files: [BundleFile], omittedImages: [OmittedImage] = []) {
        self.formatVersion = formatVersion
        self.createdAt = createdAt
        self.vtargetVersion = vtargetVersion
        self.qemu = qemu
        self.host = host
        self.instance = instance
        self.verdict = verdict
        self.files = files
        self.omittedImages = omittedImages
    }

    public struct QEMUIdentity: Codable, Sendable, Equatable {
        /// The binary's name (`qemu-system-arm`), looked up on PATH at replay.
        public var binary: String
        /// As `--version` prints its first line.
        public var version: String
        public var sha256: String

        public init(binary: String, version: String, sha256: String) {
            self.binary = binary
            self.version = version
            self.sha256 = sha256
        }
    }

    public struct HostIdentity: Codable, Sendable, Equatable {
        public var kernel: String
        public var architecture: String

        public init(kernel: String, architecture: String) {
            self.kernel = kernel
            self.architecture = architecture
        }
    }

    public struct InstanceIdentity: Codable, Sendable, Equatable {
        public var name: String
        public var namespace: String
        /// The machine profile (`lm3s6965evb`); its YAML is in the bundle too.
        public var machine: String
        /// QEMU's `-icount shift=` used for the recording: replay must use the same.
        public var icountShift: String

        public init(name: String, namespace: String, machine: String, icountShift: String) {
            self.name = name
            self.namespace = namespace
            self.machine = machine
            self.icountShift = icountShift
        }
    }

    public struct Verdict: Codable, Sendable, Equatable {
        /// The run's exit code (contract: 0 ok, 1 failure).
        public var exitCode: Int32
        /// Why it ended, as the run said it (`until matched`, `test boot failed`).
        public var reason: String

        public init(exitCode: Int32, reason: String) {
            self.exitCode = exitCode
            self.reason = reason
        }
    }

    public struct OmittedImage: Codable, Sendable, Equatable {
        public var name: String
        public var sha256: String
        public var size: UInt64

        public init(name: String, sha256: String, size: UInt64) {
            self.name = name
            self.sha256 = sha256
            self.size = size
        }
    }

    /// The file of a role, when the bundle holds exactly one (shared by
    /// every board, as `spec`, or the one board's).
    public func file(_ role: BundleFile.Role) -> BundleFile? {
        let all = files.filter { $0.role == role }
        return all.count == 1 ? all[0] : nil
    }

    /// The file of a role belonging to board `name`, when it has exactly
    /// one: in a one-board bundle, the bundle's own.
    public func file(_ role: BundleFile.Role, board name: String) -> BundleFile? {
        guard boards != nil else { return name == instance.name ? file(role) : nil }
        let all = files.filter { $0.role == role && $0.board == name }
        return all.count == 1 ? all[0] : nil
    }

    /// Board `name`'s files (in a one-board bundle, all but the shared spec).
    public func files(board name: String) -> [BundleFile] {
        guard boards != nil else { return name == instance.name ? files : [] }
        return files.filter { $0.board == name }
    }
}

/// One file of a bundle, relative to its root.
public struct BundleFile: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable, CaseIterable {
        /// The composed YAML that ran (instance, target, ConfigMaps).
        case spec
        case machineProfile
        case firmware
        case image
        /// Exact bytes of one serial device, as the guest wrote them.
        case serialOutput
        /// The same, stamped lines (wall clock and monotonic seconds).
        case serialLog
        /// What clients typed, stamped: for reading; replay feeds QEMU's log.
        case serialInput
        case canTrace
        case qmpTrace
        case pcap
        case junit
        /// QEMU's `rrfile`: every non-deterministic input of the run.
        case replayLog
        /// The scratch qcow2 holding QEMU's start snapshot (`rrsnapshot`),
        /// which a replay starts from and reverse execution returns to.
        case replaySnapshot
        /// QEMU's arguments as planned (a JSON array): a replay plans the
        /// spec again and refuses when its argv differs from this.
        case launch
    }

    public var path: String
    public var role: Role
    /// The serial device, drive or bus the file belongs to.
    public var device: String?
    public var size: UInt64
    public var sha256: String
    /// For a trace (`serialInput`, `canTrace`, `qmpTrace`, ...): how many
    /// lines or frames it holds. Absent in bundles written before traces.
    public var entries: Int?
    /// In a bundle of several boards, whose file this is (absent: shared,
    /// as the spec; and in every one-board bundle).
    public var board: String?

    public init(path: String, role: Role, device: String? = nil, size: UInt64, sha256: String, entries: Int? = nil, board: String? = nil) {
        self.path = path
        self.role = role
        self.board = board
        self.device = device
        self.size = size
        self.sha256 = sha256
        self.entries = entries
    }

    /// Timestamped records of what crossed an endpoint, as opposed to the
    /// run's inputs and QEMU's own files.
    public var isTrace: Bool {
        switch role {
        case .serialInput, .canTrace, .qmpTrace, .pcap: true
        default: false
        }
    }
}

/// Why a bundle cannot be used; `code` decides the exit status (every one
/// of these is bad input: exit 2, nothing started).
public struct BundleError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case notJSON, newerFormat, invalidField, unsafePath, duplicatePath, missingFile, digestMismatch, sizeMismatch
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension BundleManifest {
    /// Decodes and checks `manifest.json`: what a later reader relies on
    /// (safe relative paths, one entry per path, digests that look like
    /// digests, a format this version reads) is refused here, before any
    /// other file of the bundle is opened.
    public static func decode(_ bytes: [UInt8]) throws(BundleError) -> BundleManifest {
        // The version first: a newer bundle may not decode as this version's
        // type, and "made by a newer vtarget" is the message that helps.
        struct VersionOnly: Decodable { var formatVersion: Int }
        guard let version = try? JSONDecoder().decode(VersionOnly.self, from: Data(bytes)) else {
            throw BundleError(.notJSON, "manifest.json is not a bundle manifest (no formatVersion); is this a .vtb bundle?")
        }
        if version.formatVersion > currentFormatVersion {
            throw BundleError(.newerFormat, "the bundle has format version \(version.formatVersion); this vtarget reads up to \(currentFormatVersion): use a newer vtarget")
        }
        if version.formatVersion < 1 {
            throw BundleError(.invalidField, "formatVersion \(version.formatVersion) is not a version (1 or more)")
        }
        let manifest: BundleManifest
        do {
            manifest = try JSONDecoder().decode(BundleManifest.self, from: Data(bytes))
        } catch {
            throw BundleError(.invalidField, "manifest.json: \(describe(error))")
        }
        try manifest.check()
        return manifest
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    func check() throws(BundleError) {
        var seen = Set<String>()
        for f in files {
            guard Self.isSafe(f.path) else {
                throw BundleError(.unsafePath, "manifest.json: file path \"\(f.path)\" is not a plain relative path inside the bundle")
            }
            guard seen.insert(f.path).inserted else {
                throw BundleError(.duplicatePath, "manifest.json: \"\(f.path)\" is listed twice")
            }
            guard Self.isDigest(f.sha256) else {
                throw BundleError(.invalidField, "manifest.json: \"\(f.path)\" has sha256 \"\(f.sha256)\"; expected 64 lower-case hex digits")
            }
            if let n = f.entries, n < 0 {
                throw BundleError(.invalidField, "manifest.json: \"\(f.path)\" has entries \(n); expected 0 or more")
            }
        }
        for image in omittedImages where !Self.isDigest(image.sha256) {
            throw BundleError(.invalidField, "manifest.json: omitted image \"\(image.name)\" has sha256 \"\(image.sha256)\"; expected 64 lower-case hex digits")
        }
        if !qemu.sha256.isEmpty, !Self.isDigest(qemu.sha256) {
            throw BundleError(.invalidField, "manifest.json: qemu.sha256 \"\(qemu.sha256)\" is not 64 lower-case hex digits")
        }
        if file(.spec) == nil {
            throw BundleError(.missingFile, "manifest.json lists no single spec file; a bundle needs one to replay")
        }
        guard let boards else {
            if file(.replayLog) == nil {
                throw BundleError(.missingFile, "manifest.json lists no single replayLog file; a bundle needs one to replay")
            }
            if let f = files.first(where: { $0.board != nil }) {
                throw BundleError(.invalidField, "manifest.json: \"\(f.path)\" names board \"\(f.board!)\", but the bundle has no boards list")
            }
            return
        }
        if formatVersion < Self.multiBoardFormatVersion {
            throw BundleError(.invalidField, "manifest.json: a boards list needs formatVersion \(Self.multiBoardFormatVersion) or more; it has \(formatVersion)")
        }
        if boards.count < 2 {
            throw BundleError(.invalidField, "manifest.json: boards lists \(boards.count); a boards list is for 2 or more (one board is the instance alone)")
        }
        var names = Set<String>()
        for b in boards {
            guard Self.isBoardName(b.name) else {
                throw BundleError(.invalidField, "manifest.json: board name \"\(b.name)\" is not a target name (1 to 63 of a-z, 0-9 and '-', starting and ending with a letter or digit)")
            }
            guard names.insert(b.name).inserted else {
                throw BundleError(.duplicatePath, "manifest.json: board \"\(b.name)\" is listed twice")
            }
            if file(.replayLog, board: b.name) == nil {
                throw BundleError(.missingFile, "manifest.json lists no single replayLog file of board \(b.name); each board needs one to replay")
            }
        }
        for f in files {
            if let b = f.board, !names.contains(b) {
                throw BundleError(.invalidField, "manifest.json: \"\(f.path)\" names board \"\(b)\", which the boards list does not hold (\(boards.map(\.name).joined(separator: ", ")))")
            }
            if f.board == nil, f.role != .spec, f.role != .junit, f.role != .qmpTrace {
                throw BundleError(.invalidField, "manifest.json: \"\(f.path)\" (\(f.role.rawValue)) names no board; in a bundle of several boards only the spec, the JUnit report and the QMP transcript are shared")
            }
        }
    }

    /// A target's `metadata.name` as the spec allows it (a DNS-1123
    /// label): safe as one path part.
    static func isBoardName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        guard (1...63).contains(u.count), alnum(u.first!), alnum(u.last!) else { return false }
        return u.allSatisfy { alnum($0) || $0 == 45 }
    }

    /// Relative, no `.`/`..` parts, no empty parts, no NUL: extraction stays inside.
    static func isSafe(_ path: String) -> Bool {
        guard !path.isEmpty, !path.hasPrefix("/"), !path.utf8.contains(0), path.utf8.count <= 255 else { return false }
        return path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }

    static func isDigest(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    private static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, let c)?: return "missing \((c.codingPath + [key]).map(\.stringValue).joined(separator: "."))"
        case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?, .dataCorrupted(let c)?:
            return "\(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)"
        default: return "\(error)"
        }
    }
}
