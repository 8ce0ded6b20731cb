import DiskImages
import Foundation
import HostOS
import Testing

/// Boots the busybox guest of scripts/build-test-guest.sh in QEMU under TCG
/// with a seed from `CloudInitSeed`, and checks in one boot each what the
/// guest's init reports: the seed's hostname, the user-data script ran, the
/// DHCP lease from QEMU's user network, a shell on the serial console.
@Suite struct TestGuestBootTests {
    static let userData = "#!/bin/sh\necho \"user-data says $((6 * 7))\"\n"

    func seed(_ flavor: CloudInitFiles.Flavor, hostname: String, in dir: String) async throws -> String {
        let files = try CloudInitFiles(flavor: flavor, instanceID: CloudInitFiles.stableInstanceID(name: hostname, namespace: "default"),
                                       hostname: hostname, userData: Array(Self.userData.utf8), networkConfig: nil)
        let path = dir + "/seed.iso"
        try await CloudInitSeed(environment: ProcessInfo.processInfo.environment).write(files, to: path)
        return path
    }

    /// What every boot must show, in the order init prints it.
    func expectSeedApplied(_ vm: GuestVM, hostname: String, flavor: String) async throws {
        try await vm.waitFor("vtarget-guest: seed=", timeout: .seconds(120))
        try await vm.waitFor("flavor=\(flavor)", timeout: .seconds(10))
        try await vm.waitFor("vtarget-guest: hostname=\(hostname)\n", timeout: .seconds(10))
        try await vm.waitFor("user-data: user-data says 42", timeout: .seconds(10))
        try await vm.waitFor("vtarget-guest: user-data ran exit=0", timeout: .seconds(10))
        try await vm.waitFor("vtarget-guest: ip=10.0.2.15\n", timeout: .seconds(30))
        let ready = try await vm.waitFor("vtarget-guest: ready", timeout: .seconds(10))
        // The shell answers: the sum is computed by the guest, not echoed back.
        try await vm.waitFor("# ", after: ready, timeout: .seconds(20))
        vm.type("echo shell-says-$((6*7)) $(hostname)")
        try await vm.waitFor("shell-says-42 \(hostname)", after: ready, timeout: .seconds(20))
    }

    /// kernelBoot on q35: the seed and NIC on virtio, port 8080 forwarded,
    /// and `poweroff -f` ends QEMU.
    @Test func kernelBootNoCloud() async throws {
        let guest = try TestGuest.busybox.get()
        let dir = try scratchDirectory("guest")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let iso = try await seed(.noCloud, hostname: "nocloud-vm", in: dir)
        let port = try freeLoopbackPort()
        let vm = try GuestVM("/usr/bin/qemu-system-x86_64", [
            "-machine", "q35", "-accel", "tcg", "-m", "256",
            "-kernel", guest + "/x86_64/vmlinuz", "-initrd", guest + "/x86_64/initrd.gz", "-append", "console=ttyS0 panic=-1 no_timer_check",
            "-drive", "file=\(iso),if=virtio,format=raw,readonly=on",
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:\(port)-:8080", "-device", "virtio-net-pci,netdev=n0",
        ])
        defer { vm.stop() }
        try await expectSeedApplied(vm, hostname: "nocloud-vm", flavor: "nocloud")
        try await vm.waitFor("vtarget-guest: http on :8080", timeout: .seconds(5))
        let answer = try httpGet(port: port)
        #expect(answer.hasPrefix("HTTP/1.") && answer.contains("vtarget-guest nocloud-vm"), "\(answer)")
        vm.type("poweroff -f")
        #expect(try await vm.waitForExit(timeout: .seconds(30)), "poweroff -f did not end QEMU")
    }

    /// BIOS boot from the syslinux disk (a qcow2 overlay on the cached image,
    /// which stays untouched), on virtio and on SATA, with a ConfigDrive seed.
    @Test(arguments: ["virtio-blk-pci,drive=boot", "ide-hd,drive=boot,bus=ide.0"])
    func diskBootConfigDrive(_ bootDevice: String) async throws {
        let guest = try TestGuest.busybox.get()
        let dir = try scratchDirectory("guest")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let iso = try await seed(.configDrive, hostname: "drive-vm", in: dir)
        let img = QemuImg(executable: "/usr/bin/qemu-img")
        try await img.create(path: dir + "/boot.qcow2", format: .qcow2, size: nil, backing: .init(path: guest + "/x86_64/disk.qcow2", format: .qcow2))
        let vm = try GuestVM("/usr/bin/qemu-system-x86_64", [
            "-machine", "q35", "-accel", "tcg", "-m", "256",
            "-drive", "file=\(dir)/boot.qcow2,if=none,id=boot,format=qcow2", "-device", bootDevice + ",bootindex=0",
            "-drive", "file=\(iso),if=virtio,format=raw,readonly=on",
            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
        ])
        defer { vm.stop() }
        try await vm.waitFor("vtarget-guest: booting on ttyS0", timeout: .seconds(120))
        try await expectSeedApplied(vm, hostname: "drive-vm", flavor: "configdrive")
    }

    /// The arm64 guest on `virt` under TCG (console ttyAMA0).
    @Test func arm64KernelBootOnVirt() async throws {
        let guest = try TestGuest.busybox.get()
        try #require(FileManager.default.fileExists(atPath: guest + "/arm64/vmlinuz"), "built without arm64 (VTARGET_GUEST_ARM64=0)")
        let dir = try scratchDirectory("guest")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let iso = try await seed(.noCloud, hostname: "arm-vm", in: dir)
        let vm = try GuestVM("/usr/bin/qemu-system-aarch64", [
            "-machine", "virt", "-cpu", "cortex-a57", "-accel", "tcg", "-m", "256",
            "-kernel", guest + "/arm64/vmlinuz", "-initrd", guest + "/arm64/initrd.gz", "-append", "console=ttyAMA0 panic=-1",
            "-drive", "file=\(iso),if=virtio,format=raw,readonly=on",
            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
        ])
        defer { vm.stop() }
        try await vm.waitFor("vtarget-guest: booting on ttyAMA0", timeout: .seconds(120))
        try await expectSeedApplied(vm, hostname: "arm-vm", flavor: "nocloud")
    }
}
