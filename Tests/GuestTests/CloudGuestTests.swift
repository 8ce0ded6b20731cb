import DiskImages
import Foundation
import Testing

/// The debootstrap guest with the real cloud-init (scripts/build-test-guest.sh
/// --cloud): proves the seed is what cloud-init reads, not only what our own
/// busybox init reads. Its build takes minutes, so it runs when the image is
/// already cached or when VTARGET_CLOUD_GUEST=1 asks for it to be built.
@Suite struct CloudGuestTests {
    static let wanted = ProcessInfo.processInfo.environment["VTARGET_CLOUD_GUEST"] == "1"

    @Test(.enabled(if: wanted || TestGuest.cachedCloud != nil, "set VTARGET_CLOUD_GUEST=1 to build the cloud-init guest (minutes)"))
    func cloudInitSetsHostnameRunsRuncmdAndTakesTheSSHKey() async throws {
        let guest: String
        if let cached = TestGuest.cachedCloud {
            guest = cached
        } else {
            let start = ContinuousClock.now
            guest = try TestGuest.build(["--cloud"]).get()
            print("cloud guest: built \(guest) in \(ContinuousClock.now - start)")
        }
        let dir = try scratchDirectory("cloud")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try runTool("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "vtarget-test", "-f", dir + "/key"])
        let publicKey = try String(contentsOfFile: dir + "/key.pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let userData = """
            #cloud-config
            ssh_authorized_keys:
              - \(publicKey)
            runcmd:
              - echo runcmd-ran > /var/tmp/vtarget-runcmd

            """
        let files = try CloudInitFiles(flavor: .noCloud, instanceID: CloudInitFiles.stableInstanceID(name: "cloud-vm", namespace: "default"),
                                       hostname: "cloud-vm", userData: Array(userData.utf8), networkConfig: nil)
        try await CloudInitSeed(environment: ProcessInfo.processInfo.environment).write(files, to: dir + "/seed.iso")
        try await QemuImg(executable: "/usr/bin/qemu-img").create(path: dir + "/root.qcow2", format: .qcow2, size: nil,
                                                                   backing: .init(path: guest + "/disk.qcow2", format: .qcow2))
        let port = try freeLoopbackPort()
        let vm = try GuestVM("/usr/bin/qemu-system-x86_64", [
            "-machine", "q35", "-accel", "tcg", "-smp", "2", "-m", "1024",
            "-kernel", guest + "/vmlinuz", "-initrd", guest + "/initrd.img", "-append", "root=/dev/vda console=ttyS0 rw no_timer_check",
            "-drive", "file=\(dir)/root.qcow2,if=virtio,format=qcow2",
            "-drive", "file=\(dir)/seed.iso,if=virtio,format=raw,readonly=on",
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:\(port)-:22", "-device", "virtio-net-pci,netdev=n0",
        ])
        defer { vm.stop() }
        try await vm.waitFor("cloud-vm login:", timeout: .seconds(900))
        print("cloud guest: login prompt after \(ContinuousClock.now - vm.started)")
        // runcmd runs in cloud-final, after sshd is up: ask until both are there.
        let ssh = ["-i", dir + "/key", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                   "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "-p", "\(port)", "debian@127.0.0.1"]
        let deadline = ContinuousClock.now + .seconds(600)
        var answer = ""
        while ContinuousClock.now < deadline {
            answer = (try? runTool("/usr/bin/ssh", ssh + ["hostname; cat /var/tmp/vtarget-runcmd"])) ?? ""
            if answer.contains("runcmd-ran") { break }
            try await Task.sleep(for: .seconds(3))
        }
        print("cloud guest: ssh with runcmd done after \(ContinuousClock.now - vm.started)")
        #expect(answer == "cloud-vm\nruncmd-ran\n", "ssh answered \(answer.debugDescription); console:\n\(vm.output.suffix(3000))")
        _ = try? runTool("/usr/bin/ssh", ssh + ["sudo poweroff"])
        #expect(try await vm.waitForExit(timeout: .seconds(180)), "sudo poweroff did not end QEMU")
    }
}
