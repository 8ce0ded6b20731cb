#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import HostOS

/// Where a recorded instance's bundles are kept (`record: true`):
/// `<state>/bundles/<namespace>/<name>/*.vtb`, the last `kept` of them.
/// Apart from the instance's state directory, so `delete` leaves them;
/// a bundle goes when its user removes it, or when a newer run of the same
/// instance pushes it past `kept` (a target restarting under `Always`
/// would otherwise fill the disk). One shim at a time writes into an
/// instance's directory, so whatever half-done work a killed one left
/// there (a `.partial` tar, its staging copies) is its to clear.
public enum BundleShelf {
    /// Bundles kept per instance: the newest.
    public static let kept = 5
    static let suffix = ".vtb"
    /// The recording's private working copies (TMPDIR for its staging directory).
    public static func stagingParent(_ directory: String) -> String { directory + "/.staging" }

    /// Makes the instance's directory (0700, parents too) and clears what
    /// a shim killed while writing left: `*.partial` and the staging tree.
    public static func prepare(_ directory: String) throws(RuntimeError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw RuntimeError("cannot create \(directory) for the instance's recordings: \(error)", cause: error)
        }
        clearLeftovers(directory)
        guard mkdir(stagingParent(directory), 0o700) == 0 else {
            throw RuntimeError("cannot create \(stagingParent(directory)): \(String(cString: strerror(errno)))")
        }
    }

    /// Removes what a shim killed while recording left (`*.partial`, the
    /// staging tree); whole bundles stay. Only once the instance's shim has gone.
    public static func clearLeftovers(_ directory: String) {
        RuntimeDirectory.removeTree(stagingParent(directory))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".partial") {
            unlink(directory + "/" + name)
        }
    }

    /// The whole bundles of one directory, oldest first (by time written, then name).
    public static func list(_ directory: String, namespace: String, name: String) -> [BundleInfo] {
        var out: [BundleInfo] = []
        for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where file.hasSuffix(suffix) {
            let path = directory + "/" + file
            var st = stat()
            guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            let modified = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
            out.append(BundleInfo(namespace: namespace, name: name, path: path, size: UInt64(st.st_size), modifiedAt: modified))
        }
        return out.sorted { ($0.modifiedAt, $0.path) < ($1.modifiedAt, $1.path) }
    }

    /// Every kept bundle under `root` (`<state>/bundles`), narrowed to a
    /// namespace and an instance name; one walk, whatever the number of instances.
    /// The names come from a request: one path component each, never `..`.
    public static func all(root: String, namespace: String?, name: String?) -> [BundleInfo] {
        func component(_ s: String) -> Bool { !s.isEmpty && !s.contains("/") && !s.hasPrefix(".") }
        func entries(_ dir: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter(component).sorted() }
        if let namespace, !component(namespace) { return [] }
        if let name, !component(name) { return [] }
        var out: [BundleInfo] = []
        for ns in namespace.map({ [$0] }) ?? entries(root) {
            for n in name.map({ [$0] }) ?? entries(root + "/" + ns) { out += list(root + "/" + ns + "/" + n, namespace: ns, name: n) }
        }
        return out
    }

    /// Removes the oldest bundles past `keeping`; returns their paths.
    @discardableResult
    public static func prune(_ directory: String, keeping: Int = kept) -> [String] {
        let all = list(directory, namespace: "", name: "")
        let gone = all.dropLast(max(0, keeping)).map(\.path)
        for path in gone { unlink(path) }
        return Array(gone)
    }
}
