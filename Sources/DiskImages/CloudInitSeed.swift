#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import HostOS

/// Writes a cloud-init seed, or any small disk of named files (a KubeVirt
/// `configMap` volume), as an ISO 9660 image with Debian's `genisoimage`
/// (Rock Ridge + Joliet, the label the guest looks for):
/// a real tool, never hand-made filesystem bytes. One way to spawn it, one
/// deadline, errors that carry what the tool said, as `QemuImg`.
public struct CloudInitSeed: Sendable {
    /// A seed is a few kilobytes; a genisoimage still running after this is stuck.
    public static let defaultTimeoutSeconds = 30.0

    public var executable: String
    public var timeoutSeconds: Double

    public init(executable: String, timeoutSeconds: Double = CloudInitSeed.defaultTimeoutSeconds) {
        self.executable = executable
        self.timeoutSeconds = timeoutSeconds
    }

    /// `genisoimage` from `PATH`, found before anything is spawned.
    public init(environment: [String: String]) throws(CloudInitSeedError) {
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let candidates = path.split(separator: ":").map { String($0) + "/genisoimage" }
        guard let found = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw CloudInitSeedError(.notFound, "genisoimage not found (apt-get install genisoimage); cloud-init seeds need it")
        }
        self.init(executable: found)
    }

    /// The seed at `path`, replaced whole: the files go to a staging
    /// directory beside it, the ISO to `path.tmp`, renamed into place only
    /// when genisoimage succeeded, so a VM never boots a half-written seed.
    public func write(_ seed: CloudInitFiles, to path: String) async throws(CloudInitSeedError) {
        try await write(files: seed.files, volumeLabel: seed.volumeLabel, to: path)
    }

    /// Any files (paths relative, `/`-separated, no `.` or `..` part) as an
    /// ISO labelled `volumeLabel`, replaced whole as a seed is.
    public func write(files: [CloudInitFiles.File], volumeLabel: String, to path: String) async throws(CloudInitSeedError) {
        try Self.checkNames(files)
        let staging = path + ".staging-\(UInt32.random(in: 0...UInt32.max))"
        let partial = path + ".tmp"
        defer {
            try? FileManager.default.removeItem(atPath: staging)
            unlink(partial)
        }
        do {
            // Not withIntermediateDirectories: a missing parent is the caller's error, not ours to create.
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: false)
            for file in files {
                let full = staging + "/" + file.path
                let dir = String(full[..<full.lastIndex(of: "/")!])
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try Data(file.contents).write(to: URL(fileURLWithPath: full))
            }
        } catch {
            throw CloudInitSeedError(.io, "cannot stage the cloud-init files in \(staging): \(error)", cause: error)
        }
        let args = ["-quiet", "-input-charset", "utf-8", "-volid", volumeLabel, "-joliet", "-rock", "-output", partial, staging]
        let r: ProcessCapture.Separated
        do {
            r = try await ProcessCapture.runTool(executable, args, deadline: timeoutSeconds)
        } catch {
            throw CloudInitSeedError(.tool, "cannot run \(executable): \(error)", cause: error)
        }
        guard r.ended else {
            throw CloudInitSeedError(.timeout, "\(executable) wrote no seed within \(Int(timeoutSeconds)) s; killed")
        }
        guard r.status == .exited(0) else {
            throw CloudInitSeedError(.tool, "\(executable) " + args.joined(separator: " ") + ": \(r.status)" + (r.said.isEmpty ? "" : ": " + r.said))
        }
        guard rename(partial, path) == 0 else {
            let reason = String(cString: strerror(errno))
            throw CloudInitSeedError(.io, "cannot move the seed to \(path): \(reason)")
        }
    }
}

extension CloudInitSeed {
    /// File names with `/`, `.` or `..` parts are the user's error.
    static func checkNames(_ files: [CloudInitFiles.File]) throws(CloudInitSeedError) {
        for f in files where f.path.isEmpty || f.path.hasPrefix("/") || f.path.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == "." || $0 == ".." || $0.isEmpty }) {
            throw CloudInitSeedError(.badInput, field: f.path, "\"\(f.path)\" cannot be a file name on the disk; use a name without `/`, `.` or `..` parts")
        }
    }

    /// `write` through `templates`: the ISO this genisoimage made before
    /// from the same label and files (names and bytes), copied. Its
    /// timestamps are those of the first making, which no guest reads.
    /// No `templates`: `write` itself.
    public func write(files: [CloudInitFiles.File], volumeLabel: String, to path: String, templates: TemplateCache?) async throws {
        guard let templates else { return try await write(files: files, volumeLabel: volumeLabel, to: path) }
        try Self.checkNames(files)
        var fields: [[UInt8]] = [Array("genisoimage".utf8), Array((TemplateCache.identity(of: executable) ?? executable).utf8), Array(volumeLabel.utf8)]
        for f in files { fields += [Array(f.path.utf8), f.contents] }
        try await templates.file(.init(fields), at: path) { made throws(CloudInitSeedError) in
            try await write(files: files, volumeLabel: volumeLabel, to: made)
        }
    }

    public func write(_ seed: CloudInitFiles, to path: String, templates: TemplateCache?) async throws {
        try await write(files: seed.files, volumeLabel: seed.volumeLabel, to: path, templates: templates)
    }
}

/// A seed that could not be made: bad input (the field named, exit 2 for
/// the caller), a missing or failing tool, the filesystem.
public struct CloudInitSeedError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The user's data cannot work: `field` names which.
        case badInput
        case notFound
        /// genisoimage failed; `message` has what it said.
        case tool
        case timeout
        case io
    }

    public var code: Code
    /// The input that is wrong (`hostname`, `instanceID`, `networkData`), for
    /// the caller to point at its file:line:col.
    public var field: String?
    public var message: String
    /// What failed underneath, for logs; never part of `description`.
    public var cause: (any Error)?

    public init(_ code: Code, field: String? = nil, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.field = field
        self.message = message
        self.cause = cause
    }

    public var description: String { message }
}
