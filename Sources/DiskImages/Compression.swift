#if canImport(Glibc)
import Glibc
#endif
import HostOS

/// The compressions CDI's http source undoes (a `disk.img.gz`, a
/// `disk.qcow2.xz`): told from the file's first bytes, as CDI does, not from
/// its name, and undone by the system's own `gzip` or `xz`.
public enum Compression: String, Sendable, CaseIterable {
    case gzip, xz

    /// Which compression `prefix` (a file's first bytes) starts, if any.
    public static func sniff(_ prefix: some Collection<UInt8>) -> Compression? {
        let p = Array(prefix.prefix(6))
        if p.starts(with: [0x1F, 0x8B]) { return .gzip }
        if p.starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { return .xz }
        return nil
    }

    /// Debian's paths: `gzip` is essential, `xz` comes with xz-utils.
    public var tool: String {
        switch self {
        case .gzip: "/usr/bin/gzip"
        case .xz: "/usr/bin/xz"
        }
    }

    /// `source` decompressed into `destination`, which is created and must
    /// not exist; on any failure nothing is left at `destination`.
    /// A disk may take minutes to decompress: `deadline` is in seconds.
    public func decompress(_ source: String, to destination: String, deadline: Double = 3600) async throws(ImageStoreError) {
        let out = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard out >= 0 else {
            throw ImageStoreError(.io, "cannot create \(destination): \(String(cString: strerror(errno)))")
        }
        var done = false
        defer {
            close(out)
            if !done { unlink(destination) }
        }
        let r: ProcessCapture.Separated
        do {
            r = try await ProcessCapture.runTool(tool, ["-dc", "--", source], deadline: deadline, stdout: out)
        } catch {
            throw ImageStoreError(.io, "cannot run \(tool)", cause: error)
        }
        guard r.ended, r.status == .exited(0) else {
            let said = r.said
            throw ImageStoreError(.unsupportedImage, "\(tool) -dc could not decompress it (\(r.ended ? "\(r.status)" : "no end within \(Int(deadline)) s; killed")"
                + (said.isEmpty ? "" : ": " + said) + ")")
        }
        done = true
    }
}
