import Foundation
import Testing
import TestSupport

/// `image pull` of a kernelBoot container (no `/disk/`; the kernel and the
/// initrd under `/boot/`), pushed with skopeo to Debian's docker-registry on
/// 127.0.0.1: the store keeps it as a file tree, and KubeVirt's own
/// `vmi-kernel-boot.yaml` boots it. A layer with a link is refused.
@Suite(.serialized) struct KernelBootPullTests {
    @Test func aPulledKernelBootImageBootsTheExample() async throws {
        guard let guest = VMRunTests.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        let s = try ImageScratch()
        defer { s.remove() }
        let registry = try LocalRegistry(in: s.dir + "/registry")
        defer { registry.stop() }
        // The example's names for the busybox guest's kernel and initramfs.
        let kernel = s.dir + "/vmlinuz-virt", initrd = s.dir + "/initramfs-virt"
        try FileManager.default.copyItem(atPath: guest + "/x86_64/vmlinuz", toPath: kernel)
        try FileManager.default.copyItem(atPath: guest + "/x86_64/initrd.gz", toPath: initrd)
        try registry.push([kernel, initrd], as: "kubevirt/kernel-boot:1", extra: ["--under", "boot", "--gzip"])

        var r = try imageCLI(["pull", registry.address + "/kubevirt/kernel-boot:1", "--name", VMKernelBootTests.image], state: s.state)
        #expect(r.code == 0, "\(r.stdout)\(r.stderr)")
        r = try imageCLI(["inspect", VMKernelBootTests.image], state: s.state)
        let inspect = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        #expect(inspect["format"] as? String == "tar" && inspect["files"] as? [String] == ["/boot/initramfs-virt", "/boot/vmlinuz-virt"]
                && (inspect["source"] as? [String: Any])?["type"] as? String == "pull", "\(r.stdout)")
        #expect(s.temps().isEmpty)

        // The pulled tree boots as an imported one does.
        let runtime = makeRuntimeDir()
        defer { for p in [runtime, runtime + ".sh"] { try? FileManager.default.removeItem(atPath: p) } }
        try "for i in $(seq 1 480); do grep -q 'vtarget-guest: ready' $VTARGET_RUNTIME_DIR/run-*/vmi-kernel-boot/logs/console.log 2>/dev/null && exit 0; sleep 0.5; done; exit 1\n"
            .write(toFile: runtime + ".sh", atomically: true, encoding: .utf8)
        r = try shell("cd \(repoRoot) && VTARGET_STATE_DIR=\(s.state) timeout 300 \(vtarget) run -f \(VMKernelBootTests.example) --timeout 240s -- sh \(runtime).sh",
                      runtime: runtime)
        #expect(r.code == 0 && r.stdout.contains("vtarget-guest: ready"), "\(r.stdout)\n\(r.stderr)")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }

    @Test func aKernelBootImageWithALinkIsRefusedAndLeavesNothing() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let registry = try LocalRegistry(in: s.dir + "/registry")
        defer { registry.stop() }
        let kernel = s.dir + "/vmlinuz"
        try "not really a kernel\n".write(toFile: kernel, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: s.dir + "/shadow", withDestinationPath: "/etc/shadow")
        try registry.push([kernel, s.dir + "/shadow"], as: "linked:1", extra: ["--under", "boot"])
        let r = try imageCLI(["pull", registry.address + "/linked:1"], state: s.state)
        #expect(r.code == 1 && r.stderr.contains("/boot/shadow is a link or a device"), "\(r.code) \(r.stderr)")
        #expect(s.blobs().isEmpty && s.temps().isEmpty)
        #expect(try imageCLI(["ls", "-o", "name"], state: s.state).stdout.isEmpty)
    }
}
