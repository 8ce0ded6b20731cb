import Foundation
import Testing
import TestSupport

/// KubeVirt's own `vmi-kernel-boot.yaml`, unchanged, with the busybox test
/// guest's kernel and initramfs imported as its image (a directory holding
/// `/boot/vmlinuz-virt` and `/boot/initramfs-virt`): `vtarget run` unpacks
/// them into QEMU's directory and boots them with -kernel/-initrd/-append.
@Suite(.serialized) struct VMKernelBootTests {
    static let example = repoRoot + "/examples/kubevirt/vmi-kernel-boot.yaml"
    static let image = "registry:5000/kubevirt/alpine-ext-kernel-boot-demo:devel"

    /// The busybox guest with its arm64 half (VMRunTests builds it without):
    /// `VTARGET_TEST_GUEST_ARM64` from `make test`, else the script (cached: seconds).
    static let guestWithArm64: String? = testGuestDirectory("VTARGET_TEST_GUEST_ARM64")

    /// The example's image from the test guest's x86_64 kernel and initramfs.
    static func importImage(guest: String, state: String, runtime: String, kernelName: String = "vmlinuz-virt") throws -> RunResult {
        let tree = runtime + "-tree"
        try FileManager.default.createDirectory(atPath: tree + "/boot", withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: tree + "/boot/" + kernelName)
        try? FileManager.default.removeItem(atPath: tree + "/boot/initramfs-virt")
        try FileManager.default.createSymbolicLink(atPath: tree + "/boot/" + kernelName, withDestinationPath: guest + "/x86_64/vmlinuz")
        try FileManager.default.copyItem(atPath: guest + "/x86_64/initrd.gz", toPath: tree + "/boot/initramfs-virt")
        return try shell("VTARGET_STATE_DIR=\(state) \(vtarget) image import \(image) \(tree)", runtime: runtime)
    }

    @Test func theKernelBootExampleBootsToTheGuestsReadyMarker() throws {
        guard let guest = VMRunTests.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        let runtime = makeRuntimeDir()
        let state = runtime + "-state"
        defer { for p in [runtime, state, runtime + "-tree", runtime + ".sh"] { try? FileManager.default.removeItem(atPath: p) } }
        let env = "VTARGET_STATE_DIR=\(state)"
        var r = try Self.importImage(guest: guest, state: state, runtime: runtime)
        #expect(r.code == 0 && r.stdout.contains("(tar,"), "\(r.stdout)\(r.stderr)")
        r = try shell("\(env) \(vtarget) image inspect \(Self.image)", runtime: runtime)
        #expect(r.code == 0 && r.stdout.contains("\"tar\"") && r.stdout.contains("\"/boot/vmlinuz-virt\""), "\(r.stdout)\(r.stderr)")
        // render names the unpacked files, relative to QEMU's directory, and unpacks nothing.
        r = try shell("cd \(repoRoot) && \(env) \(vtarget) render -f \(Self.example)", runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("-kernel\n./vmlinuz\n-initrd\n./initrd\n-append\nconsole=ttyS0"), "\(r.stdout)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: runtime)) ?? []).isEmpty)
        try "for i in $(seq 1 480); do grep -q 'vtarget-guest: ready' $VTARGET_RUNTIME_DIR/run-*/vmi-kernel-boot/logs/console.log 2>/dev/null && exit 0; sleep 0.5; done; exit 1\n".write(toFile: runtime + ".sh", atomically: true, encoding: .utf8)
        r = try shell("cd \(repoRoot) && \(env) timeout 300 \(vtarget) run -f \(Self.example) --timeout 240s -- sh \(runtime).sh", runtime: runtime)
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        // No seed in this example: the guest says where it booted, then ready.
        #expect(r.stdout.contains("vtarget-guest: booting on ttyS0"), "\(r.stdout)")
        #expect(r.stdout.contains("vtarget-guest: ready"), "\(r.stdout)")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }

    /// What the image lacks, or an image that is a disk, is the user's input:
    /// exit 2 at the VM's file:line:col, before any disk is made or QEMU runs.
    @Test func aKernelPathTheImageLacksOrADiskImageIsBadInput() throws {
        guard let guest = VMRunTests.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        let runtime = makeRuntimeDir()
        let state = runtime + "-state"
        defer { for p in [runtime, state, runtime + "-tree", runtime + ".sh"] { try? FileManager.default.removeItem(atPath: p) } }
        let env = "VTARGET_STATE_DIR=\(state)"
        var r = try Self.importImage(guest: guest, state: state, runtime: runtime, kernelName: "vmlinuz-lts")
        #expect(r.code == 0, "\(r.stderr)")
        for verb in ["render", "run"] {
            r = try shell("cd \(repoRoot) && \(env) \(vtarget) \(verb) -f \(Self.example)", runtime: runtime)
            #expect(r.code == 2, "\(verb): \(r.stderr)")
            #expect(r.stderr.contains("vmi-kernel-boot.yaml:") && r.stderr.contains("kernelBoot.container.kernelPath")
                    && r.stderr.contains("has no file /boot/vmlinuz-virt") && r.stderr.contains("/boot/vmlinuz-lts"), "\(verb): \(r.stderr)")
        }
        r = try shell("\(env) \(vtarget) image import \(Self.image) \(guest)/x86_64/disk.qcow2", runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        r = try shell("cd \(repoRoot) && \(env) \(vtarget) run -f \(Self.example)", runtime: runtime)
        #expect(r.code == 2 && r.stderr.contains("is a qcow2 disk, not a file tree") && r.stderr.contains("vtarget image import"), "\(r.stderr)")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
        #expect(((try? FileManager.default.subpathsOfDirectory(atPath: runtime)) ?? []).filter { $0.hasSuffix(".qcow2") }.isEmpty)
    }

    /// An arm64 VM (`spec.architecture: arm64`) on `virt` under TCG: AAVMF
    /// (UEFI, a per-VM vars copy) loads the test guest's arm64 kernel and
    /// initramfs through fw_cfg, and the guest answers on the PL011.
    @Test func anArm64VMBootsOnVirtUnderTCG() throws {
        guard let guest = Self.guestWithArm64, FileManager.default.fileExists(atPath: guest + "/arm64/vmlinuz") else {
            Issue.record("scripts/build-test-guest.sh built no arm64 kernel")
            return
        }
        let runtime = makeRuntimeDir()
        let state = runtime + "-state"
        defer { for p in [runtime, state, runtime + "-tree", runtime + ".yaml", runtime + ".sh"] { try? FileManager.default.removeItem(atPath: p) } }
        let env = "VTARGET_STATE_DIR=\(state)"
        let tree = runtime + "-tree"
        try FileManager.default.createDirectory(atPath: tree + "/boot", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: tree + "/boot/vmlinuz", withDestinationPath: guest + "/arm64/vmlinuz")
        try FileManager.default.createSymbolicLink(atPath: tree + "/boot/initrd.gz", withDestinationPath: guest + "/arm64/initrd.gz")
        var r = try shell("\(env) \(vtarget) image import vtarget-test/busybox-kernel-arm64:1 \(tree)", runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        try """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: arm}
            spec:
              architecture: arm64
              domain:
                memory: {guest: 256Mi}
                devices: {}
                firmware:
                  kernelBoot:
                    container:
                      image: vtarget-test/busybox-kernel-arm64:1
                      kernelPath: /boot/vmlinuz
                      initrdPath: /boot/initrd.gz
                    kernelArgs: console=ttyAMA0
            """.write(toFile: runtime + ".yaml", atomically: true, encoding: .utf8)
        r = try shell("cd \(repoRoot) && \(env) \(vtarget) render -f \(runtime).yaml", runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("qemu-system-aarch64") && r.stdout.contains("virt,accel=tcg") && r.stdout.contains("pflash0=")
                && r.stdout.contains("-kernel\n./vmlinuz"), "\(r.stdout)")
        try "for i in $(seq 1 1000); do grep -q 'vtarget-guest: ready' $VTARGET_RUNTIME_DIR/run-*/arm/logs/console.log 2>/dev/null && exit 0; sleep 0.5; done; exit 1\n".write(toFile: runtime + ".sh", atomically: true, encoding: .utf8)
        r = try shell("cd \(repoRoot) && \(env) timeout 600 \(vtarget) run -f \(runtime).yaml --timeout 540s -- sh \(runtime).sh", runtime: runtime)
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("vtarget-guest: booting on ttyAMA0") && r.stdout.contains("aarch64") && r.stdout.contains("vtarget-guest: ready"), "\(r.stdout)")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }
}
