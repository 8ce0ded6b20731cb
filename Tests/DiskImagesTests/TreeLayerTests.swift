@testable import DiskImages
import Foundation
import Testing

/// A kernelBoot container's layers stacked into a file tree by the real GNU
/// tar: whiteouts of a later layer delete what earlier ones left, and a
/// link, or a member climbing out with `..`, refuses the whole pull.
@Suite struct TreeLayerTests {
    let dir = "/tmp/vt-tree-\(UInt32.random(in: 0...UInt32.max))"

    /// A tar of `files` (path → contents; nil makes a symlink to /etc/shadow), made by tar from a staging directory.
    func layer(_ name: String, _ files: [String: String?]) throws -> String {
        let stage = dir + "/stage-" + name
        for (path, contents) in files {
            let full = stage + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if let contents {
                try contents.write(toFile: full, atomically: true, encoding: .utf8)
            } else {
                try FileManager.default.createSymbolicLink(atPath: full, withDestinationPath: "/etc/shadow")
            }
        }
        let out = dir + "/" + name + ".tar"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        p.arguments = ["-c", "-f", out, "-C", stage, "."]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        return out
    }

    func stack(_ layers: [String]) async throws -> String {
        let root = dir + "/root"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var listings: [[String]] = []
        for l in layers { listings.append(try await OCILayers.list(tar: "/usr/bin/tar", layer: l)) }
        try await OCILayers.unpackAll(tar: "/usr/bin/tar", layers: layers, listings: listings, into: root)
        return root
    }

    func files(_ root: String) -> [String] {
        (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).filter {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + $0, isDirectory: &isDir) && !isDir.boolValue
        }.sorted()
    }

    @Test func laterLayersWinAndWhiteoutsDelete() async throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let base = try layer("base", ["boot/vmlinuz": "old kernel", "boot/initrd.img": "initrd", "boot/old/config": "c", "etc/motd": "hi"])
        let top = try layer("top", ["boot/vmlinuz": "new kernel", "boot/.wh.initrd.img": "", "boot/old/.wh..wh..opq": "", "boot/old/kept": "k",
                                    ".wh.etc": ""])
        #expect(OCILayers.hasFiles([["boot/"], ["boot/.wh.x"]]) == false)
        #expect(OCILayers.hasFiles([["./boot/vmlinuz"]]))
        let root = try await stack([base, top])
        #expect(files(root) == ["boot/old/kept", "boot/vmlinuz"])
        #expect(try String(contentsOfFile: root + "/boot/vmlinuz", encoding: .utf8) == "new kernel")
    }

    @Test func aLinkIsRefused() async throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let linked = try layer("linked", ["boot/vmlinuz": "k", "boot/shadow": nil])
        await #expect {
            _ = try await stack([linked])
        } throws: { error in
            (error as? ImageStoreError)?.message.contains("layer 1: /boot/shadow is a link or a device") == true
        }
    }

    @Test func aWhiteoutClimbingOutIsRefused() async throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let root = dir + "/root"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try "keep".write(toFile: dir + "/victim", atomically: true, encoding: .utf8)
        let l = try layer("plain", ["boot/vmlinuz": "k"])
        await #expect {
            try await OCILayers.unpackAll(tar: "/usr/bin/tar", layers: [l], listings: [["boot/../../.wh.victim"]], into: root)
        } throws: { error in
            (error as? ImageStoreError)?.message.contains("climbs out of the image") == true
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/victim"))
    }
}
