import DiskImages
import Foundation
import HostOS
import Testing
import VMLaunch
import VMLaunchCases
import VMRuntime
import VMSpec

/// A named volume after its first making, with real qemu-img: a claim that
/// asks for more grows it, one that asks for less leaves it, and a claim
/// moved to another storage class is refused rather than given a new,
/// empty volume.
@Suite struct VMPreparationVolumeTests {
    typealias Tools = VMPreparationTemplateTests.Tools

    static func vm(request: UInt64?, storageClass: String? = nil) -> VMDefinition {
        VMLaunchCases.vm("vol", disks: [VMDisk(name: "data", source: .volume(name: "data", capacityBytes: request, storageClass: storageClass))])
    }

    static func size(_ path: String) async throws -> UInt64 {
        try await QemuImg(executable: "/usr/bin/qemu-img").info(path: path).virtualSize
    }

    @Test func aLargerRequestGrowsTheVolumeASmallerOneLeavesIt() async throws {
        let t = try Tools()
        defer { t.remove() }
        let p = try await t.preparation()
        let qemu = t.dir + "/q"
        try FileManager.default.createDirectory(atPath: qemu, withIntermediateDirectories: true)
        let made = try #require(try await p.disks(for: Self.vm(request: 8 << 20), in: qemu)["data"]).path
        #expect(made == p.volumes.root + "/default/data.qcow2")
        #expect(try await Self.size(made) == 8 << 20)
        #expect(QCOW2Header.virtualSize(ofFile: made) == 8 << 20, "the header read agrees with qemu-img")
        unlink(t.log)
        // The same request: nothing run (the size comes from the header, not a qemu-img process).
        _ = try await p.disks(for: Self.vm(request: 8 << 20), in: qemu)
        #expect(t.runs().isEmpty)
        // More: grown in place, by one qemu-img.
        let grown = try #require(try await p.disks(for: Self.vm(request: 24 << 20), in: qemu)["data"]).path
        #expect(grown == made && t.runs() == ["qemu-img"])
        #expect(try await Self.size(made) == 24 << 20)
        // Less, or none: left at its size, nothing run.
        unlink(t.log)
        _ = try await p.disks(for: Self.vm(request: 4 << 20), in: qemu)
        _ = try await p.disks(for: Self.vm(request: nil), in: qemu)
        #expect(t.runs().isEmpty)
        #expect(try await Self.size(made) == 24 << 20)
    }

    @Test func aClaimMovedToAnotherClassIsRefusedNotMadeAnew() async throws {
        let t = try Tools()
        defer { t.remove() }
        var p = try await t.preparation()
        let fast = t.dir + "/fast"
        p.volumes.classDirectories = ["fast": fast]
        let qemu = t.dir + "/q"
        try FileManager.default.createDirectory(atPath: qemu, withIntermediateDirectories: true)
        let made = try #require(try await p.disks(for: Self.vm(request: 8 << 20), in: qemu)["data"]).path
        await #expect {
            _ = try await p.disks(for: Self.vm(request: 8 << 20, storageClass: "fast"), in: qemu)
        } throws: { error in
            guard let e = error as? RuntimeError else { return false }
            return e.code == .badInput && e.message.contains("volume default/data already exists at \(made)")
                && e.message.contains("mv \(made) \(fast)/default/data.qcow2")
        }
        #expect(!FileManager.default.fileExists(atPath: fast + "/default/data.qcow2"), "no new empty volume")
        // And the other way: a volume of class fast, its claim now naming no class.
        let other = VMLaunchCases.vm("vol", disks: [VMDisk(name: "d", source: .volume(name: "other", capacityBytes: 1 << 20, storageClass: "fast"))])
        _ = try await p.disks(for: other, in: qemu)
        var moved = other
        moved.disks[0].source = .volume(name: "other", capacityBytes: 1 << 20, storageClass: nil)
        await #expect(throws: RuntimeError.self) { _ = try await p.disks(for: moved, in: qemu) }
        #expect(!FileManager.default.fileExists(atPath: p.volumes.root + "/default/other.qcow2"))
    }
}
