import Foundation
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import InstanceContract
import ReplayFormat
import Sandbox

/// A `.vtb` on disk: a gzip-compressed tar (GNU tar, run as a child)
/// holding `manifest.json` and the files it lists, nothing else. QEMU's
/// replay log, most of a long recording, shrinks about 4 times; tar finds
/// the compression itself when reading, so older uncompressed bundles (and
/// a user's hand-made `tar -cf`) still read. Reading one
/// extracts it into a private directory and then trusts nothing the
/// manifest does not vouch for: every entry a regular file it lists, every
/// size and sha256 as it says.
public enum BundleArchive {
    public static let fileExtension = "vtb"

    /// Writes `manifest.json` into `staging` and the tar to `output` (via a
    /// temporary name beside it, so a bundle is whole or absent).
    public static func write(_ manifest: BundleManifest, staging: String, to output: String) async throws(RuntimeError) {
        try writeFile(staging + "/" + BundleManifest.fileName, manifest.encoded())
        let partial = output + ".partial"
        // Owner, times and order fixed, and no time in gzip's header (-n):
        // the same run gives the same bytes.
        let members = [BundleManifest.fileName] + manifest.files.map(\.path)
        let r = try await tar(["--create", "--use-compress-program=gzip -n", "--file", partial, "--directory", staging, "--owner=0", "--group=0", "--numeric-owner",
                               "--mtime=@0", "--mode=u=rw,go=r", "--format=gnu", "--"] + members)
        guard r.status == .exited(0) else {
            unlink(partial)
            throw RuntimeError("cannot write \(output): tar said: \(r.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        guard rename(partial, output) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(partial)
            throw RuntimeError("cannot write \(output): \(why)")
        }
    }

    /// Extracts `bundle` into `directory` (which must be new, empty and
    /// private) and checks it against its manifest; any problem is bad
    /// input (exit 2).
    public static func open(_ bundle: String, into directory: String) async throws(RuntimeError) -> BundleManifest {
        guard access(bundle, R_OK) == 0 else {
            throw RuntimeError("\(bundle): cannot be read (\(String(cString: strerror(errno)))); give a .vtb written by vtarget run --record", code: .badInput)
        }
        let r = try await tar(["--extract", "--file", bundle, "--directory", directory, "--no-same-owner", "--no-same-permissions",
                               "--delay-directory-restore"])
        guard r.status == .exited(0) else {
            let said = r.output.trimmingCharacters(in: .whitespacesAndNewlines)
            throw RuntimeError("\(bundle): not a whole bundle (truncated or not a tar): tar said: \(said)", code: .badInput)
        }
        guard let bytes = FileManager.default.contents(atPath: directory + "/" + BundleManifest.fileName) else {
            throw RuntimeError("\(bundle): no manifest.json inside; is this a .vtb bundle?", code: .badInput)
        }
        let manifest: BundleManifest
        do { manifest = try BundleManifest.decode(Array(bytes)) } catch {
            throw RuntimeError("\(bundle): \(error.message)", code: .badInput)
        }
        try checkTree(directory, against: manifest, bundle: bundle)
        for f in manifest.files {
            let (digest, size) = try FileDigest.sha256(directory + "/" + f.path)
            if size != f.size {
                throw RuntimeError("\(bundle): \(f.path) has \(size) bytes, the manifest says \(f.size): the bundle was truncated or changed", code: .badInput)
            }
            if digest != f.sha256 {
                throw RuntimeError("\(bundle): \(f.path) has sha256 \(digest), the manifest says \(f.sha256): the bundle was changed after it was written",
                                   code: .badInput)
            }
        }
        return manifest
    }

    /// Everything extracted is a directory on the way to a listed file, the
    /// manifest, or a listed regular file; nothing is missing.
    static func checkTree(_ directory: String, against manifest: BundleManifest, bundle: String) throws(RuntimeError) {
        var listed = Set(manifest.files.map(\.path))
        listed.insert(BundleManifest.fileName)
        var parents = Set<String>()
        for p in listed {
            var parts = p.split(separator: "/").dropLast()
            while !parts.isEmpty {
                parents.insert(parts.joined(separator: "/"))
                parts = parts.dropLast()
            }
        }
        guard let walker = FileManager.default.enumerator(atPath: directory) else {
            throw RuntimeError("cannot read \(directory)")
        }
        var found = Set<String>()
        while let rel = walker.nextObject() as? String {
            var st = stat()
            guard lstat(directory + "/" + rel, &st) == 0 else { continue }
            let kind = st.st_mode & S_IFMT
            if kind == S_IFDIR, parents.contains(rel) { continue }
            guard kind == S_IFREG, listed.contains(rel) else {
                throw RuntimeError("\(bundle): holds \(rel), which its manifest does not list as a file; refusing it", code: .badInput)
            }
            found.insert(rel)
        }
        if let missing = listed.subtracting(found).sorted().first {
            throw RuntimeError("\(bundle): \(missing) is listed in the manifest but not in the bundle (truncated?)", code: .badInput)
        }
    }

    /// One file of the bundle, without extracting the rest (`bundle show`).
    public static func readMember(_ bundle: String, _ path: String) async throws(RuntimeError) -> [UInt8] {
        let r = try await tarBytes(["--extract", "--to-stdout", "--file", bundle, "--", path])
        guard r.status == .exited(0) else {
            throw RuntimeError("\(bundle): cannot read \(path) from it (truncated, or not a bundle): \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))",
                               code: .badInput)
        }
        return r.stdout
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws(RuntimeError) {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RuntimeError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard FileDescriptors.writeAll(fd, bytes) else { throw RuntimeError("cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    private static func tar(_ arguments: [String]) async throws(RuntimeError) -> ProcessCapture.Result {
        do {
            return try await ProcessCapture.run(deadline: 300) { w in
                SpawnRequest(executable: "/usr/bin/tar", arguments: arguments, environment: ["PATH=/usr/bin:/bin", "LC_ALL=C"], fds: [-1, w, w])
            }
        } catch {
            throw RuntimeError("cannot run tar: \(error)", code: .spawn, cause: error)
        }
    }

    private static func tarBytes(_ arguments: [String]) async throws(RuntimeError) -> ProcessCapture.Separated {
        do {
            return try await ProcessCapture.runTool("/usr/bin/tar", arguments, deadline: 120)
        } catch {
            throw RuntimeError("cannot run tar: \(error)", code: .spawn, cause: error)
        }
    }
}
