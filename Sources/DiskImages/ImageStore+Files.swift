#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HostOS

/// File-tree images: what a kernelBoot container carries (`/boot/vmlinuz`,
/// `/boot/initrd.img`), kept as one tar blob, content-addressed like a disk,
/// and unpacked file by file into a VM's own directory when it starts.
/// GNU tar writes and reads them (every dialect, gzip, refuses `..`).
extension ImageStore {
    /// A directory becomes a tar made the same way every time (sorted names,
    /// owner 0, mtime 0), so the same tree imports to the same digest.
    /// Symbolic links are followed: `/boot/vmlinuz` is usually one, and a
    /// VM needs the file.
    func importTree(_ directory: String, source: Source, refs: [String]) async throws(ImageStoreError) -> Image {
        let temp = newTempPath(suffix: ".tar")
        do {
            _ = try await OCILayers.run(tar, ["-c", "-f", temp, "-C", directory, "--dereference", "--sort=name", "--owner=0", "--group=0",
                                              "--numeric-owner", "--mtime=@0", "--format=gnu", "."],
                                        deadline: OCILayers.extractDeadline, what: "archiving \(directory)")
            let (digest, size) = try Self.hash(temp)
            return try await add(temp: temp, digest: digest, fileSize: size, what: directory, source: source, refs: refs,
                                 tree: try await treeFiles(temp, what: directory))
        } catch {
            unlink(temp)
            throw error
        }
    }

    /// The archive's members that are files, normalized (`boot/vmlinuz`);
    /// an archive with none is no file tree.
    func treeFiles(_ archive: String, what: String) async throws(ImageStoreError) -> [String] {
        let names = try await OCILayers.list(tar: tar, layer: archive)
        let files = names.filter { !$0.hasSuffix("/") }.map(OCILayers.normalize).filter { !$0.isEmpty }
        guard !files.isEmpty else {
            throw ImageStoreError(.unsupportedImage, "\(what): an archive with no files; a file-tree image holds e.g. boot/vmlinuz and boot/initrd.img")
        }
        return Array(Set(files)).sorted()
    }

    /// A POSIX/GNU tar (`ustar` at byte 257) or gzip (which tar reads).
    static func looksLikeTar(_ path: String) -> Bool {
        let head = FileDescriptors.head(path, 263)
        if head.starts(with: [0x1f, 0x8b]) { return true }
        return head.count == 263 && Array(head[257..<262]) == Array("ustar".utf8)
    }

    /// Unpacks one file of a file-tree image to `destination` (which must
    /// not exist): `member` as the VM names it (`/boot/vmlinuz`). A member
    /// that is not there is `.notFound`; a link or device is refused.
    public func extractFile(_ member: String, of image: Resolved, to destination: String) async throws(ImageStoreError) {
        let wanted = OCILayers.normalize(member)
        guard image.format == .tar, let files = image.files else {
            throw ImageStoreError(.layout, "image \(image.digest.short) is a \(image.format.rawValue) disk, not a file tree; import a directory or tar holding \(member)")
        }
        guard files.contains(wanted) else {
            throw ImageStoreError(.notFound, "image \(image.digest.short) has no file \(member); it holds " + files.prefix(8).map { "/" + $0 }.joined(separator: ", ")
                + (files.count > 8 ? ", ..." : ""))
        }
        let scratch = destination + ".unpack"
        guard mkdir(scratch, 0o700) == 0 else { throw ImageStoreError(.io, "cannot create \(scratch): \(String(cString: strerror(errno)))") }
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // The archive may spell it `./boot/x`, `boot/x` or `/boot/x`: ask tar for the spelling it has.
        let names = try await OCILayers.list(tar: tar, layer: image.path)
        guard let archiveName = names.last(where: { OCILayers.normalize($0) == wanted }) else {
            throw ImageStoreError(.layout, "image \(image.digest.short): \(member) is in the index but not in the archive")
        }
        let path = try await OCILayers.extract(tar: tar, layer: image.path, member: .init(archiveName: archiveName, path: wanted, layer: 0), into: scratch)
        guard rename(path, destination) == 0 else {
            throw ImageStoreError(.io, "cannot move \(member) to \(destination): \(String(cString: strerror(errno)))")
        }
        chmod(destination, 0o644)
    }
}
