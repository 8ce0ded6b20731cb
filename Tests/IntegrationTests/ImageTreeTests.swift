import DiskImages
import Foundation
import Testing

/// File-tree images (kernelBoot's kernel and initrd): a directory or a tar
/// archive imported into the store, unpacked one file at a time.
@Suite struct ImageTreeTests {
    typealias Ref = ImageStore.Reference

    /// `boot/vmlinuz` (a symlink, as Debian ships it) to `boot/vmlinuz-6`, and an initrd.
    func tree(_ s: ImageScratch, kernel: String = "kernel-bytes") throws -> String {
        let root = s.dir + "/tree"
        try FileManager.default.createDirectory(atPath: root + "/boot", withIntermediateDirectories: true)
        try kernel.write(toFile: root + "/boot/vmlinuz-6", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: root + "/boot/vmlinuz", withDestinationPath: "vmlinuz-6")
        try "initrd-bytes".write(toFile: root + "/boot/initrd.img", atomically: true, encoding: .utf8)
        return root
    }

    @Test func aDirectoryIsAFileTreeWithAStableDigestAndItsFilesUnpack() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let store = try s.store()
        let root = try tree(s)
        let a = try await store.importFile(root, as: Ref.parse("kb:1"))
        #expect(a.format == .tar)
        #expect(a.files == ["boot/initrd.img", "boot/vmlinuz", "boot/vmlinuz-6"])
        // Same tree, same bytes: the archive is made the same way each time.
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 1000)], ofItemAtPath: root + "/boot/initrd.img")
        let b = try await store.importFile(root, as: Ref.parse("kb:2"))
        #expect(a.digest == b.digest)
        let resolved = try store.resolve("kb:1")
        #expect(resolved.format == .tar && resolved.files == a.files)
        // The link was followed: the VM gets the kernel itself.
        try await store.extractFile("/boot/vmlinuz", of: resolved, to: s.dir + "/vmlinuz")
        #expect(try String(contentsOfFile: s.dir + "/vmlinuz", encoding: .utf8) == "kernel-bytes")
        #expect(!FileManager.default.fileExists(atPath: s.dir + "/vmlinuz.unpack"))
        await #expect(throws: ImageStoreError.self) { try await store.extractFile("/boot/nothere", of: resolved, to: s.dir + "/x") }
        try s.expectConsistent(store)
    }

    @Test func aTarArchiveIsKeptAsItIsAndALinkInItIsNoKernel() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let store = try s.store()
        let root = try tree(s)
        for (name, flags) in [("plain.tar", "-cf"), ("gz.tar.gz", "-czf")] {
            let r = try shell("tar -C \(root) \(flags) \(s.dir)/\(name) boot", runtime: s.dir)
            #expect(r.code == 0, "\(r.stderr)")
            let image = try await store.importFile(s.dir + "/" + name, as: Ref.parse("kbt:\(name.prefix(2))"))
            #expect(image.format == .tar && image.files == ["boot/initrd.img", "boot/vmlinuz", "boot/vmlinuz-6"], "\(image)")
            #expect(image.digest.hex == (try sha256(ofFile: s.dir + "/" + name)))
            let resolved = try store.resolve("kbt:\(name.prefix(2))")
            try await store.extractFile("boot/initrd.img", of: resolved, to: s.dir + "/initrd-" + name)
            #expect(try String(contentsOfFile: s.dir + "/initrd-" + name, encoding: .utf8) == "initrd-bytes")
            // Kept as a link in the archive: refused, not followed.
            await #expect(throws: ImageStoreError.self) { try await store.extractFile("boot/vmlinuz", of: resolved, to: s.dir + "/k-" + name) }
            #expect(!FileManager.default.fileExists(atPath: s.dir + "/k-" + name))
        }
        try s.expectConsistent(store)
    }

    @Test func aDiskIsNoFileTreeAndAnEmptyArchiveIsRefused() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let store = try s.store()
        _ = try await store.importFile(try await s.disk("d.qcow2"), as: Ref.parse("disk:1"))
        await #expect(throws: ImageStoreError.self) { try await store.extractFile("boot/vmlinuz", of: try store.resolve("disk:1"), to: s.dir + "/k") }
        try FileManager.default.createDirectory(atPath: s.dir + "/empty", withIntermediateDirectories: true)
        do {
            _ = try await store.importFile(s.dir + "/empty", as: Ref.parse("empty:1"))
            Issue.record("an empty directory was imported")
        } catch {
            #expect(error.code == .unsupportedImage && "\(error)".contains("no files"), "\(error)")
        }
        try s.expectConsistent(store)
    }
}
