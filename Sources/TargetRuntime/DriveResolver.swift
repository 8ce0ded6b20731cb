#if canImport(Glibc)
import Glibc
#endif
import HostOS
import DiskImages
import QEMULaunch
import TargetSpec
import YAMLTree

/// Puts each drive's image where QEMU can open it and learns its format:
/// ConfigMap data is written into the instance directory (0600), file sources
/// are checked not to leave their YAML's directory through a symlink.
public struct DriveResolver {
    public var instanceDirectory: String
    /// False for `render`: compute paths and formats, write nothing.
    public var materialize: Bool
    /// Copy firmware from file/hostPath sources into the instance directory:
    /// when QEMU drops to another uid it may not read the user's files.
    public var copyFirmware: Bool
    public var environment: [String: String]

    public init(instanceDirectory: String, materialize: Bool, copyFirmware: Bool = false, environment: [String: String]) {
        self.instanceDirectory = instanceDirectory
        self.materialize = materialize
        self.copyFirmware = copyFirmware
        self.environment = environment
    }

    /// Firmware images are small and loaded once; disks are not copied.
    private func placed(_ d: Drive, _ real: String, _ format: ImageFormat) throws -> ResolvedDrive {
        guard copyFirmware, materialize, d.kind != .disk, d.kind != .cdrom else {
            return ResolvedDrive(drive: d, path: real, format: format)
        }
        let copy = instanceDirectory + "/drive-\(d.name).\(format.rawValue)"
        try write(try InputFiles.readFile(real), to: copy)
        return ResolvedDrive(drive: d, path: copy, format: format)
    }

    public func resolve(_ runnable: RunnableTarget, yamlDirectory: (Drive) -> String?) async throws -> [ResolvedDrive] {
        var out: [ResolvedDrive] = []
        for d in runnable.target.qemu.drives {
            switch d.source {
            case .configMap:
                let bytes = runnable.configData[d.name] ?? []
                let format = ImageFormat(d.format, sniffed: Array(bytes.prefix(512)))
                let path = instanceDirectory + "/drive-\(d.name).\(format.rawValue)"
                if materialize { try write(bytes, to: path) }
                out.append(ResolvedDrive(drive: d, path: path, format: format))
            case .file(let path):
                let real = try realPath(path, d)
                if let dir = yamlDirectory(d), let realDir = realpathString(dir), !(real + "/").hasPrefix(realDir + "/") && real != realDir {
                    throw DiagnosticError([Diagnostic(.error, at: d.location, field: d.path + ".source.file",
                        "\(path) resolves through a symlink to \(real), outside \(realDir); file sources stay inside their YAML's directory")])
                }
                out.append(try placed(d, real, ImageFormat(d.format, sniffed: try prefix(real))))
            case .hostPath(let path):
                let real = try realPath(path, d)
                out.append(try placed(d, real, ImageFormat(d.format, sniffed: try prefix(real))))
            case .emptyDisk(let capacity):
                let path = instanceDirectory + "/disk-\(d.name).qcow2"
                if materialize { try await QemuImg(environment: environment).create(path: path, format: .qcow2, size: capacity) }
                out.append(ResolvedDrive(drive: d, path: path, format: .qcow2))
            }
        }
        return out
    }

    private func realPath(_ path: String, _ d: Drive) throws(DiagnosticError) -> String {
        guard let r = realpathString(path) else {
            throw DiagnosticError([Diagnostic(.error, at: d.location, field: d.path + ".source",
                "\(path): \(String(cString: strerror(errno)))")])
        }
        return r
    }

    private func prefix(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RuntimeError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buf, buf.count)
        return n > 0 ? Array(buf[0..<n]) : []
    }

    private func write(_ bytes: [UInt8], to path: String) throws(RuntimeError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RuntimeError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw RuntimeError("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}

func realpathString(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}

/// `PATH` lookup, done once before spawning so exec never searches.
public enum ExecutableSearch {
    public static func find(_ name: String, environment: [String: String]) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? InputFiles.absolute(name) : nil }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
