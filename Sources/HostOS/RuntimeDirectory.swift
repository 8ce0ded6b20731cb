#if canImport(Glibc)
import Glibc
#endif

/// Where sockets live: `$XDG_RUNTIME_DIR/vtarget`, else `/tmp/vtarget-$UID`,
/// always a 0700 directory owned by the user. Kept short because a unix
/// socket path holds at most 107 bytes.
public enum RuntimeDirectory {
    public static let maxSocketPath = 107

    public static func base(environment: [String: String]) -> String {
        if let x = environment["VTARGET_RUNTIME_DIR"], !x.isEmpty { return x }
        if let x = environment["XDG_RUNTIME_DIR"], !x.isEmpty { return x + "/vtarget" }
        return "/tmp/vtarget-\(getuid())"
    }

    /// Creates `path` 0700 if missing and refuses one that is not ours: a
    /// /tmp name may have been taken by someone else. `traversable` (0711)
    /// lets a QEMU that dropped to another uid reach its own directory below
    /// without being able to list anything.
    public static func ensurePrivate(_ path: String, traversable: Bool = false) throws(RuntimeError) {
        let mode: mode_t = traversable ? 0o711 : 0o700
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw RuntimeError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw RuntimeError("cannot inspect \(path): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw RuntimeError("\(path) is not a directory") }
        guard st.st_uid == getuid() else { throw RuntimeError("\(path) belongs to uid \(st.st_uid), not to you; refusing to use it") }
        if st.st_mode & 0o777 != mode { chmod(path, mode) }
    }

    /// As root, QEMU runs as another uid and must traverse every directory
    /// above its own: say which one stops it, rather than let QEMU fail with
    /// "Permission denied" on its firmware.
    public static func checkTraversableByOthers(_ path: String) throws(RuntimeError) {
        if let (dir, mode) = untraversable(path) {
            throw RuntimeError("\(dir) (mode \(String(mode, radix: 8))) cannot be traversed by the unprivileged uid QEMU runs as; chmod o+x it or set VTARGET_RUNTIME_DIR below a directory that can")
        }
    }

    /// The first directory above `path` (and `path` itself) that other uids
    /// cannot pass through, with its mode; nil when they can reach `path`.
    public static func untraversable(_ path: String) -> (String, mode_t)? {
        var dir = path
        while true {
            var st = stat()
            if stat(dir, &st) == 0, st.st_mode & 0o001 == 0 { return (dir, st.st_mode & 0o777) }
            guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { return nil }
            dir = String(dir[..<slash])
        }
    }

    public static func checkSocketPath(_ path: String) throws(RuntimeError) {
        if path.utf8.count > maxSocketPath {
            throw RuntimeError("socket path \(path) is \(path.utf8.count) bytes; unix sockets allow \(maxSocketPath). Set VTARGET_RUNTIME_DIR to a shorter directory")
        }
    }

    /// Removes a directory tree we created (sockets, firmware copies). Never
    /// follows symlinks out of it.
    public static func removeTree(_ path: String) {
        guard let dir = opendir(path) else {
            unlink(path)
            return
        }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            var st = stat()
            if lstat(child, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
                removeTree(child)
            } else {
                unlink(child)
            }
        }
        closedir(dir)
        rmdir(path)
    }
}
