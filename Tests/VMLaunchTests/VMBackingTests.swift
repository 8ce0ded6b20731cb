import QEMULaunch
import Testing
import VMLaunch
import VMLaunchCases
import VMSpec

/// An overlay on a store image: the image is a read-only node of its own,
/// the overlay's backing, so QEMU never follows the path recorded in the
/// overlay; files outside QEMU's directory go as fd sets when sandboxed.
@Suite struct VMBackingTests {
    static let dir = "/run/vt/bb/qemu"

    static func plan(fds: Bool) throws -> LaunchPlan {
        let vm = VMLaunchCases.vm("bb", disks: [
            VMDisk(name: "root", source: .image(reference: "busybox:1", path: nil)),
            VMDisk(name: "data", source: .volume(name: "data", capacityBytes: 1 << 30, storageClass: nil)),
        ], graphics: false)
        var host = VMHostInputs(qemuBinary: "qemu-system-x86_64", accel: .tcg, disks: [
            "root": .init(path: dir + "/disk0.qcow2", format: .qcow2, base: .init(path: "/home/u/.local/state/vtarget/images/blobs/sha256/ab", format: .qcow2)),
            "data": .init(path: "/home/u/.local/state/vtarget/volumes/default/data.qcow2", format: .qcow2),
        ], instanceDirectory: dir)
        host.passImagesAsFDs = fds
        return try VMLaunchPlanner.plan(vm: vm, host: host)
    }

    @Test func theImageIsTheOverlaysBackingNodeByFD() throws {
        let plan = try Self.plan(fds: true)
        let args = plan.argv
        // The image: one read-only fd; the volume: a read-write and a read-only one.
        #expect(plan.passedFiles == [
            .planned(path: "/home/u/.local/state/vtarget/images/blobs/sha256/ab", childFD: 4, writable: false),
            .planned(path: "/home/u/.local/state/vtarget/volumes/default/data.qcow2", childFD: 5, writable: true),
            .planned(path: "/home/u/.local/state/vtarget/volumes/default/data.qcow2", childFD: 6, writable: false),
        ])
        #expect(args.contains("fd=4,set=1") && args.contains("fd=5,set=2") && args.contains("fd=6,set=2"))
        #expect(args.contains(#"{"driver":"file","filename":"/dev/fdset/1","node-name":"basefile-root","read-only":true}"#))
        #expect(args.contains(#"{"driver":"qcow2","file":"basefile-root","node-name":"base-root","read-only":true}"#))
        #expect(args.contains(#"{"driver":"file","filename":"./disk0.qcow2","node-name":"file-root"}"#))
        #expect(args.contains(#"{"backing":"base-root","driver":"qcow2","file":"file-root","node-name":"fmt-root"}"#))
        #expect(args.contains(#"{"driver":"file","filename":"/dev/fdset/2","node-name":"file-data"}"#))
        #expect(!args.contains { $0.contains("/home/u") }, "no host path outside QEMU's directory in the argv")
    }

    @Test func unsandboxedTheyArePaths() throws {
        let plan = try Self.plan(fds: false)
        #expect(plan.passedFiles.isEmpty)
        #expect(plan.argv.contains(#"{"driver":"file","filename":"/home/u/.local/state/vtarget/images/blobs/sha256/ab","node-name":"basefile-root","read-only":true}"#))
    }

    @Test func thePodNetworkAsksForTheHostsNetworkAndNamesItsPorts() throws {
        let vm = VMLaunchCases.vm("web", interfaces: [VMInterface(name: "default", ports: [VMInterface.Port(port: 8080)])])
        let plan = try VMLaunchPlanner.plan(vm: vm, host: VMHostInputs(qemuBinary: "qemu-system-x86_64", accel: .tcg, disks: [:],
            instanceDirectory: Self.dir, forwardedPorts: [.init(interface: "default", guestPort: 8080, hostPort: 40123)]))
        #expect(plan.hostNetwork && plan.forwardedPorts == ["8080/tcp": 40123])
        #expect(try !VMLaunchPlanner.plan(vm: VMLaunchCases.vm("quiet"), host: VMHostInputs(qemuBinary: "q", accel: .tcg, disks: [:],
                                                                                         instanceDirectory: Self.dir)).hostNetwork)
    }
}
