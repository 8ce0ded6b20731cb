@testable import DiskImages
import Testing

/// KubeVirt's containerDisk layout across stacked layers.
@Suite struct LayoutTests {
    func paths(_ listings: [[String]]) -> [String] { OCILayers.diskFiles(listings).map(\.path) }

    @Test func oneDiskInAnySpelling() throws {
        for name in ["disk/disk.qcow2", "./disk/disk.qcow2", "/disk/disk.qcow2"] {
            let m = try OCILayers.theDisk(OCILayers.diskFiles([["disk/", name]]))
            #expect(m.path == "disk/disk.qcow2")
            #expect(m.archiveName == name)
            #expect(m.layer == 0)
        }
    }

    @Test func stacking() {
        // A base layer with an OS, the disk in a later one.
        #expect(paths([["bin/", "bin/sh", "etc/passwd"], ["disk/", "disk/x.img"]]) == ["disk/x.img"])
        // A later layer replaces the file and says which layer holds it.
        #expect(OCILayers.diskFiles([["disk/a.img"], ["disk/a.img"]]).first?.layer == 1)
        // Whiteouts remove files of the layers below, not their own.
        #expect(paths([["disk/a.img", "disk/b.img"], ["disk/.wh.a.img"]]) == ["disk/b.img"])
        #expect(paths([["disk/a.img"], ["disk/.wh..wh..opq", "disk/b.img"]]) == ["disk/b.img"])
        #expect(paths([["disk/a.img"], [".wh.disk"], ["disk/c.raw"]]) == ["disk/c.raw"])
        #expect(paths([["disk/sub/x"], ["disk/.wh.sub"]]) == [])
        // Not under /disk/: ignored; disk itself as a file is not a disk under it.
        #expect(paths([["diskette/a.img", "x/disk/a.img", "disk"]]) == [])
    }

    @Test func zeroOrSeveralNameWhatWasFound() {
        do {
            _ = try OCILayers.theDisk(OCILayers.diskFiles([["etc/hosts"]]))
            Issue.record("no disk accepted")
        } catch {
            #expect(error.code == .layout)
            #expect(error.message.contains("found nothing"), "\(error)")
        }
        do {
            _ = try OCILayers.theDisk(OCILayers.diskFiles([["disk/a.qcow2", "disk/b.raw"]]))
            Issue.record("two disks accepted")
        } catch {
            #expect(error.message.contains("/disk/a.qcow2, /disk/b.raw"), "\(error)")
        }
        #expect(throws: ImageStoreError.self) { try OCILayers.theDisk(OCILayers.diskFiles([[#"disk/a\nb"#]])) }
    }
}
