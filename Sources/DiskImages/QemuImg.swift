#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HostOS

/// Every `qemu-img` vtarget runs goes through here: one way to spawn it, one
/// deadline, errors that carry what the tool said.
public struct QemuImg: Sendable {
    public enum Format: String, Sendable, Codable {
        case raw, qcow2
    }

    /// An image a new qcow2 starts from and records as its backing file.
    public struct Backing: Sendable {
        public var path: String
        public var format: Format

        public init(path: String, format: Format) {
            self.path = path
            self.format = format
        }
    }

    /// Creating or inspecting an image touches metadata only; a qemu-img
    /// still running after this long is stuck (a hung NFS mount, a lock).
    public static let defaultTimeoutSeconds = 30.0

    public var executable: String
    public var timeoutSeconds: Double

    public init(executable: String, timeoutSeconds: Double = QemuImg.defaultTimeoutSeconds) {
        self.executable = executable
        self.timeoutSeconds = timeoutSeconds
    }

    /// A new image at `path`, which must not exist yet. `size` may be left
    /// out with a backing image, whose size the new one then takes.
    public func create(path: String, format: Format, size: UInt64?, backing: Backing? = nil) async throws(QemuImgError) {
        var args = ["create", "-q", "-f", format.rawValue]
        if let backing { args += ["-b", backing.path, "-F", backing.format.rawValue] }
        args.append(path)
        if let size { args.append("\(size)") }
        _ = try await run(args)
    }

    /// A copy of `source` at `path` (which must not exist yet) in `format`:
    /// e.g. a raw EFI vars template as qcow2, which `savevm` can snapshot.
    public func convert(_ source: String, from sourceFormat: Format, to path: String, format: Format) async throws(QemuImgError) {
        _ = try await run(["convert", "-q", "-f", sourceFormat.rawValue, "-O", format.rawValue, source, path])
    }

    /// `path` (qcow2) grown to `size` bytes; the guest sees a bigger disk.
    public func grow(_ path: String, to size: UInt64) async throws(QemuImgError) {
        _ = try await run(["resize", "-q", "-f", Format.qcow2.rawValue, path, "\(size)"])
    }

    /// What qemu-img knows of an image. `--force-share`: the image may be
    /// open in a running QEMU, which holds its write lock.
    public func info(path: String) async throws(QemuImgError) -> ImageInfo {
        let args = ["info", "--output=json", "--force-share", path]
        let out = try await run(args)
        do {
            return try JSONDecoder().decode(ImageInfo.self, from: Data(out))
        } catch {
            throw QemuImgError(arguments: args, reason: "unreadable output: \(error)")
        }
    }

    /// Runs qemu-img with no stdin and a bare environment; its stdout on success.
    private func run(_ args: [String]) async throws(QemuImgError) -> [UInt8] {
        let r: ProcessCapture.Separated
        do {
            r = try await ProcessCapture.runTool(executable, args, deadline: timeoutSeconds)
        } catch {
            throw QemuImgError(arguments: args, reason: "cannot run \(executable): \(error)")
        }
        guard r.ended else {
            throw QemuImgError(arguments: args, reason: "no answer within \(Int(timeoutSeconds)) s; killed")
        }
        guard r.status == .exited(0) else {
            throw QemuImgError(arguments: args, reason: "\(r.status)" + (r.said.isEmpty ? "" : ": " + r.said))
        }
        return r.stdout
    }
}

/// A qemu-img call that failed: the command and why, in the tool's words.
public struct QemuImgError: Error, Sendable, CustomStringConvertible {
    public var arguments: [String]
    public var reason: String

    public var description: String { "qemu-img " + arguments.joined(separator: " ") + ": " + reason }
}
