import DiskImages
import Foundation
import Testing
import VMLaunch
import VMLaunchCases
import VMRuntime
import VMSpec

/// A VM's start files from templates: qemu-img and genisoimage run once
/// for the first start, never for the next, and starts at once each get
/// their own writable files.
@Suite struct VMPreparationTemplateTests {
    /// qemu-img and genisoimage behind wrappers that log each run.
    struct Tools {
        let dir = "/tmp/vt-prep-\(UInt32.random(in: 0...UInt32.max))"
        var log: String { dir + "/runs.log" }

        init() throws {
            try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
            for tool in ["qemu-img", "genisoimage"] {
                let path = dir + "/bin/" + tool
                try "#!/bin/sh\necho \(tool) >> \(log)\nexec /usr/bin/\(tool) \"$@\"\n".write(toFile: path, atomically: true, encoding: .utf8)
                chmod(path, 0o755)
            }
        }

        func remove() { try? FileManager.default.removeItem(atPath: dir) }
        func runs() -> [String] { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init).sorted() }

        func preparation() async throws -> VMPreparation {
            let qemuImg = QemuImg(executable: dir + "/bin/qemu-img")
            let state = dir + "/state"
            let store = ImageStore(stateDirectory: state, qemuImg: qemuImg)
            let disk = dir + "/guest.qcow2"
            if access(disk, F_OK) != 0 {
                try await QemuImg(executable: "/usr/bin/qemu-img").create(path: disk, format: .qcow2, size: 8 << 20)
                _ = try await store.importFile(disk, as: try .parse("test/guest:1"))
                // The import's `qemu-img info` is no start's.
                unlink(log)
            }
            var p = VMPreparation(qemuImg: qemuImg, store: store, seeds: CloudInitSeed(executable: dir + "/bin/genisoimage"),
                                  volumes: VolumeLocations(root: state + "/volumes"), allowHostPaths: false)
            p.templates = TemplateCache(stateDirectory: state)
            return p
        }
    }

    static let vm = VMLaunchCases.vm("guest", disks: [
        VMDisk(name: "root", source: .image(reference: "test/guest:1", path: nil)),
        VMDisk(name: "scratch", source: .empty(capacityBytes: 1 << 30)),
        VMDisk(name: "seed", source: .cloudInit(CloudInit(flavor: .noCloud, userData: "#!/bin/sh\necho hi\n"))),
    ])

    @Test func theSecondStartRunsNoTool() async throws {
        let t = try Tools()
        defer { t.remove() }
        let p = try await t.preparation()
        try FileManager.default.createDirectory(atPath: t.dir + "/a", withIntermediateDirectories: true)
        let first = try await p.disks(for: Self.vm, in: t.dir + "/a")
        #expect(t.runs() == ["genisoimage", "qemu-img", "qemu-img"])
        try FileManager.default.createDirectory(atPath: t.dir + "/b", withIntermediateDirectories: true)
        let second = try await p.disks(for: Self.vm, in: t.dir + "/b")
        #expect(t.runs() == ["genisoimage", "qemu-img", "qemu-img"], "the second start ran a tool")
        for name in ["root", "scratch", "seed"] {
            let a = try #require(first[name]), b = try #require(second[name])
            #expect(a.path != b.path)
            #expect(FileManager.default.contents(atPath: a.path) == FileManager.default.contents(atPath: b.path), "\(name)")
            #expect(a.format == b.format && a.readOnly == b.readOnly && a.base?.path == b.base?.path)
        }
        // The overlay is qemu-img's: on the store image, read-only base, writable top.
        let info = try await QemuImg(executable: "/usr/bin/qemu-img").info(path: try #require(second["root"]).path)
        #expect(info.backingFilename == (try p.store.resolve("test/guest:1")).path)
        #expect(info.virtualSize == 8 << 20)
        // A pool member's scratch the same way: made once.
        _ = try await p.snapshotScratch(in: t.dir + "/a")
        _ = try await p.snapshotScratch(in: t.dir + "/b")
        #expect(t.runs().filter { $0 == "qemu-img" }.count == 3)
        // Other user-data is another seed, made by genisoimage.
        var other = Self.vm
        other.disks[2].source = .cloudInit(CloudInit(flavor: .noCloud, userData: "#!/bin/sh\necho other\n"))
        try FileManager.default.createDirectory(atPath: t.dir + "/c", withIntermediateDirectories: true)
        let third = try await p.disks(for: other, in: t.dir + "/c")
        #expect(t.runs().filter { $0 == "genisoimage" }.count == 2)
        #expect(FileManager.default.contents(atPath: try #require(third["seed"]).path) != FileManager.default.contents(atPath: try #require(second["seed"]).path))
    }

    /// Two VMs started at once, the cache cold: every writable file is
    /// each start's own, and a write to one is not seen in the other.
    @Test func startsAtOnceShareNoWritableFile() async throws {
        let t = try Tools()
        defer { t.remove() }
        let p = try await t.preparation()
        let dirs = (0..<4).map { t.dir + "/vm\($0)" }
        for d in dirs { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let all = try await withThrowingTaskGroup(of: [String: VMHostInputs.DiskBacking].self) { group in
            for d in dirs { group.addTask { try await p.disks(for: Self.vm, in: d) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for name in ["root", "scratch", "seed"] {
            var inodes = Set<UInt64>()
            for disks in all {
                var st = stat()
                #expect(stat(try #require(disks[name]).path, &st) == 0)
                inodes.insert(UInt64(st.st_ino))
            }
            #expect(inodes.count == dirs.count, "\(name): a file shared between starts")
        }
        let root0 = try #require(all[0]["root"]).path, root1 = try #require(all[1]["root"]).path
        let before = FileManager.default.contents(atPath: root1)
        let fd = open(root0, O_WRONLY)
        #expect(pwrite(fd, [UInt8](repeating: 0xee, count: 16), 16, 100_000) == 16)
        close(fd)
        #expect(FileManager.default.contents(atPath: root1) == before)
    }
}
