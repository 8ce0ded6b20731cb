#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HostOS
import MachineCatalog
import TargetSpec
import YAMLTree
#if canImport(Glibc)
import Glibc
#endif

/// Reads what the user named: YAML files and directories of them, and the
/// machine profiles. The only file-system reading of the input layers.
public enum InputFiles {
    /// Only regular files: a FIFO would block the open and `/dev/zero` would
    /// be read forever, so the file is opened non-blocking and its type checked
    /// on the descriptor (no race with a rename) before anything is read. A
    /// file the user named that cannot be read is bad input (exit 2).
    public static func readFile(_ path: String) throws(RuntimeError) -> [UInt8] {
        let shown = Diagnostic.escapingControls(path)
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let why = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
            throw RuntimeError("cannot read \(shown): \(why)", code: .badInput)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw RuntimeError("cannot read \(shown): \(String(cString: strerror(errno)))", code: .badInput)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw RuntimeError("cannot read \(shown): not a regular file (\(fileType(st.st_mode)))", code: .badInput)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(st.st_size))
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw RuntimeError("cannot read \(shown): \(String(cString: strerror(errno)))", code: .badInput)
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    static func fileType(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a plain file"
        }
    }

    public static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? PathRules.normalize(path) : PathRules.normalize(FileManager.default.currentDirectoryPath + "/" + path)
    }

    /// `paths` as source files: directories contribute their `.yaml`/`.yml`/`.json`
    /// files in name order (recursively with `recursive`); `-` is standard input.
    public static func sources(_ paths: [String], recursive: Bool) throws(RuntimeError) -> [SourceFile] {
        var out: [SourceFile] = []
        for p in paths {
            if p == "-" {
                var bytes: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = read(0, &chunk, chunk.count)
                    if n <= 0 { break }
                    bytes += chunk[0..<n]
                }
                out.append(SourceFile(path: "<stdin>", directory: FileManager.default.currentDirectoryPath, bytes: bytes))
                continue
            }
            guard let isDir = isDirectory(p) else {
                throw RuntimeError("\(Diagnostic.escapingControls(p)): no such file or directory", code: .badInput)
            }
            if isDir {
                var visiting: [DirectoryID: String] = [:]
                out += try directorySources(p, recursive: recursive, visiting: &visiting)
            } else {
                let abs = absolute(p)
                out.append(SourceFile(path: p, directory: String(abs[..<abs.lastIndex(of: "/")!]).orRoot, bytes: try readFile(p)))
            }
        }
        return out
    }

    /// A directory by what it is, not how it was reached.
    struct DirectoryID: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    /// `visiting` holds the directories on the current path (device and
    /// inode, as stat follows symlinks): meeting one again is a symlink loop,
    /// which would otherwise be walked forever. A directory reached twice by
    /// different paths (not a loop) is still read each time.
    static func directorySources(_ dir: String, recursive: Bool, visiting: inout [DirectoryID: String]) throws(RuntimeError) -> [SourceFile] {
        var st = stat()
        guard stat(dir, &st) == 0 else {
            throw RuntimeError("cannot read \(Diagnostic.escapingControls(dir)): \(String(cString: strerror(errno)))", code: .badInput)
        }
        let id = DirectoryID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        if let first = visiting[id] {
            throw RuntimeError("\(Diagnostic.escapingControls(dir)): symlink loop: it is the directory \(Diagnostic.escapingControls(first)) again", code: .badInput)
        }
        visiting[id] = dir
        defer { visiting[id] = nil }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        var out: [SourceFile] = []
        for n in names where !n.hasPrefix(".") {
            let p = dir.hasSuffix("/") ? dir + n : dir + "/" + n
            if isDirectory(p) == true {
                if recursive { out += try directorySources(p, recursive: true, visiting: &visiting) }
            } else if n.hasSuffix(".yaml") || n.hasSuffix(".yml") || n.hasSuffix(".json") {
                out.append(SourceFile(path: p, directory: absolute(dir), bytes: try readFile(p)))
            }
        }
        return out
    }

    /// The user's vtarget configuration: `$XDG_CONFIG_HOME/vtarget`, else `~/.config/vtarget`.
    public static func configDirectory(environment: [String: String]) -> String {
        (environment["XDG_CONFIG_HOME"] ?? ((environment["HOME"] ?? "") + "/.config")) + "/vtarget"
    }

    /// Built-in profiles, then `~/.config/vtarget/machines`, then
    /// `$VTARGET_MACHINES` (colon-separated): later ones replace earlier ones.
    public static func machineDirectories(environment: [String: String], executable: String) -> [String] {
        (builtInMachines(executable: executable).map { [$0] } ?? []) + userMachineDirectories(environment: environment)
    }

    /// `~/.config/vtarget/machines`, then `$VTARGET_MACHINES`: the user's.
    static func userMachineDirectories(environment: [String: String]) -> [String] {
        [configDirectory(environment: environment) + "/machines"] + (environment["VTARGET_MACHINES"]?.split(separator: ":").map(String.init) ?? [])
    }

    /// The `machines/` directory shipped with this binary: beside it under
    /// share/vtarget, or in the source tree it was built in.
    static func builtInMachines(executable: String) -> String? {
        var dir = absolute(executable)
        for _ in 0..<6 {
            guard let slash = dir.lastIndex(of: "/") else { break }
            dir = String(dir[..<slash])
            for candidate in [dir + "/machines", dir + "/share/vtarget/machines"]
            where FileManager.default.fileExists(atPath: candidate + "/stm32vldiscovery.yaml") {
                return candidate
            }
        }
        return nil
    }

    /// nil when `path` does not exist.
    static func isDirectory(_ path: String) -> Bool? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// The machine profiles. With no profile of the user's (the config
    /// directory's and VTARGET_MACHINES' are read whole, as a user's profile
    /// may replace a built-in one or be based on one), the built-in ones are
    /// parsed as they are looked up (`ProfileShelf`).
    public static func loadCatalog(environment: [String: String], executable: String) throws -> MachineCatalog {
        @Sendable func profileFiles(_ dir: String) throws -> [ProfileShelf.File] {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
            return try names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.map { (dir + "/" + $0, try readFile(dir + "/" + $0)) }
        }
        let builtIn = builtInMachines(executable: executable)
        var files: [(path: String, bytes: [UInt8])] = []
        for dir in userMachineDirectories(environment: environment) where dir != builtIn {
            files += try profileFiles(dir)
        }
        if let builtIn, files.isEmpty {
            return MachineCatalog(shelf: ProfileShelf(
                file: { name in
                    // A name from the input: a file name of its own, never a path.
                    guard !name.isEmpty, !name.hasPrefix("."), name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }),
                          let bytes = try? readFile(builtIn + "/" + name + ".yaml") else { return nil }
                    return (builtIn + "/" + name + ".yaml", bytes)
                },
                allFiles: { (try? profileFiles(builtIn)) ?? [] }))
        }
        files = try (builtIn.map(profileFiles) ?? []) + files
        if files.isEmpty {
            throw RuntimeError("no machine profiles found; looked in " + userMachineDirectories(environment: environment).joined(separator: ", ") + " (set VTARGET_MACHINES to the machines/ directory)")
        }
        return try MachineCatalog.parse(files: files)
    }
}

extension String {
    var orRoot: String { isEmpty ? "/" : self }
}
