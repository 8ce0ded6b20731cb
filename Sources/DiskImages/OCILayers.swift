#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HostOS

/// Reading KubeVirt's containerDisk layout out of an image's layers: the
/// disk is the one file under `/disk/` once the layers are stacked (later
/// layers win, OCI whiteouts delete). The layers are unpacked by GNU tar,
/// not by hand: it reads every tar dialect (pax, GNU long names, sparse
/// members, which big disk files often are) and gzip, and refuses members
/// that climb out with `..`; vtarget only ever asks it for one member.
enum OCILayers {
    /// A file under `disk/` and the layer (index) whose copy survives.
    struct Member: Equatable, Sendable {
        /// As the layer's tar names it (what `tar -x` is given back).
        var archiveName: String
        /// Without `./` or `/` in front: `disk/disk.qcow2`.
        var path: String
        var layer: Int
    }

    /// The members left under `disk/` after stacking `listings` (each
    /// layer's member names, in layer order).
    static func diskFiles(_ listings: [[String]]) -> [Member] {
        var files: [String: Member] = [:]
        for (layer, names) in listings.enumerated() {
            var added: [String: Member] = [:]
            var whiteouts: [String] = []
            var opaque: [String] = []
            for name in names {
                let path = normalize(name)
                let base = path.split(separator: "/").last.map(String.init) ?? ""
                let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) + "/" : ""
                if base == ".wh..wh..opq" {
                    opaque.append(dir)
                } else if base.hasPrefix(".wh.") {
                    whiteouts.append(dir + base.dropFirst(4))
                } else if path.hasPrefix("disk/"), !name.hasSuffix("/"), path.count > 5 {
                    added[path] = Member(archiveName: name, path: path, layer: layer)
                }
            }
            // A layer's whiteouts hide what the layers below it hold.
            for w in whiteouts { files = files.filter { $0.key != w && !$0.key.hasPrefix(w + "/") } }
            for d in opaque { files = files.filter { !$0.key.hasPrefix(d) } }
            files.merge(added) { _, new in new }
        }
        return files.values.sorted { $0.path < $1.path }
    }

    /// Whether the stacked layers leave any file (not only directories
    /// and whiteouts): an image with none is neither disk nor file tree.
    static func hasFiles(_ listings: [[String]]) -> Bool {
        listings.joined().contains { name in
            let base = normalize(name).split(separator: "/").last ?? ""
            return !name.hasSuffix("/") && !base.isEmpty && !base.hasPrefix(".wh.")
        }
    }

    /// Stacks every layer into `root`, as a container runtime does: each
    /// layer's whiteouts delete what the layers below left (`.wh.NAME`,
    /// `.wh..wh..opq`), then tar unpacks the layer without them. A member
    /// with `..`, a link or a device is refused: the tree is only ever a
    /// kernel and an initrd, and a link left by one layer would let the
    /// next write through it.
    static func unpackAll(tar: String, layers: [String], listings: [[String]], into root: String) async throws(ImageStoreError) {
        for (i, layer) in layers.enumerated() {
            for name in listings[i] {
                let path = normalize(name)
                let parts = path.split(separator: "/")
                if parts.contains("..") {
                    throw ImageStoreError(.layout, "layer \(i + 1) names \"\(name)\", which climbs out of the image; refused")
                }
                guard let base = parts.last, base.hasPrefix(".wh.") else { continue }
                let dir = parts.dropLast().joined(separator: "/")
                let inRoot = root + (dir.isEmpty ? "" : "/" + dir)
                if base == ".wh..wh..opq" {
                    for entry in (try? FileManager.default.contentsOfDirectory(atPath: inRoot)) ?? [] {
                        try? FileManager.default.removeItem(atPath: inRoot + "/" + entry)
                    }
                } else {
                    try? FileManager.default.removeItem(atPath: inRoot + "/" + base.dropFirst(4))
                }
            }
            _ = try await run(tar, ["-x", "-f", layer, "-C", root, "--no-same-owner", "--no-same-permissions", "--exclude=.wh.*"],
                              deadline: extractDeadline, what: "unpacking layer \(i + 1)")
            try checkTree(root, layer: i + 1)
        }
    }

    /// Only directories and regular files, each readable by its owner.
    static func checkTree(_ root: String, layer: Int) throws(ImageStoreError) {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return }
        while let relative = walker.nextObject() as? String {
            var st = stat()
            guard lstat(root + "/" + relative, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: chmod(root + "/" + relative, 0o755)
            case S_IFREG: chmod(root + "/" + relative, 0o644)
            default:
                throw ImageStoreError(.layout, "layer \(layer): /\(relative) is a link or a device; a kernelBoot image holds only files and directories")
            }
        }
    }

    static func normalize(_ name: String) -> String {
        var s = Substring(name)
        while true {
            if s.hasPrefix("./") { s = s.dropFirst(2) } else if s.hasPrefix("/") { s = s.dropFirst() } else { break }
        }
        return String(s.hasSuffix("/") ? s.dropLast() : s)
    }

    /// The one disk, or an error naming what `/disk/` holds.
    static func theDisk(_ members: [Member]) throws(ImageStoreError) -> Member {
        guard members.count == 1 else {
            let found = members.isEmpty ? "nothing" : members.map { "/" + $0.path }.joined(separator: ", ")
            throw ImageStoreError(.layout, "expected exactly one disk file under /disk/ (KubeVirt's containerDisk layout); found \(found)")
        }
        let m = members[0]
        guard !m.archiveName.contains("\\") else {
            throw ImageStoreError(.layout, "/\(m.path): a file name with escaped characters; name the disk plainly, e.g. /disk/disk.qcow2")
        }
        return m
    }

    /// Listing a layer is quick; unpacking a multi-gigabyte disk is not.
    static let listDeadline = 600.0
    static let extractDeadline = 3600.0

    /// The member names of one layer (gzip or not: tar looks).
    static func list(tar: String, layer: String) async throws(ImageStoreError) -> [String] {
        let out = try await run(tar, ["-t", "-f", layer], deadline: listDeadline, what: "listing layer \(layer)")
        return String(decoding: out, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Unpacks one member into `directory`; its path there, checked to be a regular file.
    static func extract(tar: String, layer: String, member: Member, into directory: String) async throws(ImageStoreError) -> String {
        _ = try await run(tar, ["-x", "-f", layer, "-C", directory, "--no-same-owner", "--no-same-permissions", "--", member.archiveName],
                          deadline: extractDeadline, what: "unpacking /\(member.path)")
        let path = directory + "/" + member.path
        var st = stat()
        guard lstat(path, &st) == 0 else { throw ImageStoreError(.layout, "/\(member.path) is listed in its layer but tar did not unpack it") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ImageStoreError(.layout, "/\(member.path) is not a regular file (a link or a device); expected the disk itself")
        }
        chmod(path, 0o600)
        return path
    }

    static func run(_ tar: String, _ args: [String], deadline: Double, what: String) async throws(ImageStoreError) -> [UInt8] {
        let r: ProcessCapture.Separated
        do {
            r = try await ProcessCapture.runTool(tar, args, deadline: deadline)
        } catch {
            throw ImageStoreError(.io, "\(what): cannot run \(tar)", cause: error)
        }
        guard r.ended else { throw ImageStoreError(.io, "\(what): tar still running after \(Int(deadline)) s; killed") }
        guard r.status == .exited(0) else {
            let said = r.stderr.split(separator: "\n").prefix(5).joined(separator: "; ")
            throw ImageStoreError(.layout, "\(what): tar \(r.status)" + (said.isEmpty ? "" : ": " + said) + " (is the layer a tar archive?)")
        }
        return r.stdout
    }
}
