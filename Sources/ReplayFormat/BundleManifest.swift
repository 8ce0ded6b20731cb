#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `manifest.json` at the root of a bundle: everything `replay` and
/// `bundle show` need to know before they trust any other file in it.
public struct BundleManifest: Codable, Sendable, Equatable {
    /// Bumped when a reader of an older version could misread a bundle.
    public static let currentFormatVersion = 1
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

    /// The file of a role, when the bundle holds exactly one.
    public func file(_ role: BundleFile.Role) -> BundleFile? {
        let all = files.filter { $0.role == role }
        return all.count == 1 ? all[0] : nil
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

    public init(path: String, role: Role, device: String? = nil, size: UInt64, sha256: String, entries: Int? = nil) {
        self.path = path
        self.role = role
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
        for role in [BundleFile.Role.spec, .replayLog] where file(role) == nil {
            throw BundleError(.missingFile, "manifest.json lists no single \(role.rawValue) file; a bundle needs one to replay")
        }
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
