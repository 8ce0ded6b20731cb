import Foundation
import HostOS
import Testing
import TestSupport

/// The debootstrap guest with the real cloud-init and qemu-guest-agent
/// (scripts/build-test-guest.sh --cloud) as a KubeVirt VirtualMachine
/// applied to the supervisor: its root disk and its kernel from the store,
/// a NoCloud seed that cloud-init (not our own init) reads. One boot proves
/// the hostname, the SSH key of the default user `debian` and `runcmd`
/// (through `vtarget ssh`), the guest agent's status in `get vmi` (the
/// AgentConnected condition and the guest's own IP) and `guestosinfo`.
/// Runs when the guest is cached (`make test` hands it over), as building
/// it takes minutes.
@Suite(.serialized) struct VMCloudGuestTests {
    static let guest: String? = testGuestDirectory("VTARGET_TEST_CLOUD_GUEST", arguments: ["--cloud", "--cached"])

    static func vmYAML(publicKey: String) -> String {
        """
        apiVersion: kubevirt.io/v1
        kind: VirtualMachine
        metadata: {name: cloudy}
        spec:
          runStrategy: Always
          template:
            spec:
              hostname: cloud-vm
              domain:
                cpu: {cores: 2}
                memory: {guest: 1Gi}
                firmware:
                  kernelBoot:
                    container:
                      image: vtarget-test/cloud-kernel:1
                      kernelPath: /vmlinuz
                      initrdPath: /initrd.img
                    kernelArgs: root=/dev/vda console=ttyS0 rw no_timer_check
                devices:
                  disks:
                    - name: root
                      disk: {bus: virtio}
                    - name: cloudinit
                      disk: {bus: virtio}
              volumes:
                - name: root
                  containerDisk: {image: vtarget-test/cloud-root:1}
                - name: cloudinit
                  cloudInitNoCloud:
                    userData: |
                      #cloud-config
                      ssh_authorized_keys:
                        - \(publicKey)
                      runcmd:
                        - echo runcmd-ran > /var/tmp/vtarget-runcmd
        """
    }

    @Test(.enabled(if: guest != nil, "the cloud-init guest is not cached (scripts/build-test-guest.sh --cloud)"))
    func cloudInitAndTheGuestAgentThroughVtarget() throws {
        let guest = Self.guest!
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let tree = f.work + "/kernel"
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        for file in ["vmlinuz", "initrd.img"] {
            try FileManager.default.createSymbolicLink(atPath: tree + "/" + file, withDestinationPath: guest + "/" + file)
        }
        var r = try f.vt(["image", "import", "vtarget-test/cloud-kernel:1", tree])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["image", "import", "vtarget-test/cloud-root:1", guest + "/disk.qcow2"])
        #expect(r.code == 0, "\(r.stderr)")
        let key = f.work + "/key"
        let keygen = try shell("ssh-keygen -q -t ed25519 -N '' -C vtarget-test -f \(key)", runtime: f.runtime)
        #expect(keygen.code == 0, "\(keygen.stderr)")
        let publicKey = try String(contentsOfFile: key + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try Self.vmYAML(publicKey: publicKey).write(toFile: f.work + "/vm.yaml", atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", f.work + "/vm.yaml"])
        #expect(r.code == 0, "\(r.stdout)\(r.stderr)")
        let started = Date()

        // runcmd runs in cloud-final, after sshd is up: ask until both are there.
        let ssh = ["ssh", "debian@vm/cloudy", "-i", key,
                   "--local-ssh-opts=-o BatchMode=yes -o ConnectTimeout=20 -o LogLevel=ERROR",
                   "-c", "hostname; cat /var/tmp/vtarget-runcmd"]
        var answer = r
        let deadline = Date().addingTimeInterval(900)
        while Date() < deadline {
            answer = try f.vt(ssh)
            if answer.stdout.contains("runcmd-ran") { break }
            sleep(3)
        }
        print("cloud guest under vtarget: ssh with runcmd done after \(Int(Date().timeIntervalSince(started))) s")
        let console = (try? f.vt(["logs", "cloudy"]).stdout.suffix(3000)).map(String.init) ?? ""
        #expect(answer.code == 0 && answer.stdout == "cloud-vm\nruncmd-ran\n",
                "ssh: \(answer.code) \(answer.stdout.debugDescription) \(answer.stderr)\nconsole:\n\(console)")

        // The agent is polled every 10 s: AgentConnected and the guest's own
        // address (QEMU's user network gives it 10.0.2.15) come within a few rounds.
        var vmi = ""
        let agentDeadline = Date().addingTimeInterval(180)
        while Date() < agentDeadline {
            vmi = try f.vt(["get", "vmi", "cloudy", "-o", "yaml"]).stdout
            if vmi.contains("AgentConnected") && vmi.contains("10.0.2.15") { break }
            sleep(2)
        }
        #expect(vmi.contains("AgentConnected") && vmi.contains("10.0.2.15") && vmi.contains("Debian GNU/Linux") && vmi.contains("kind: VirtualMachine"), "\(vmi)")
        let wide = try f.vt(["get", "vmi", "cloudy", "-o", "wide"])
        #expect(wide.code == 0 && wide.stdout.contains("10.0.2.15") && wide.stdout.contains("Running"), "\(wide.stdout)\(wide.stderr)")

        // Clients that left QEMU's agent socket mid-way, one with half a
        // request, one with a whole request unanswered: the next session
        // still syncs (a 0xFF ends the half; the stale answer is skipped).
        let socket = try shell("find \(f.runtime) \(f.state) -name qga.sock 2>/dev/null | head -1", runtime: f.runtime).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!socket.isEmpty)
        for stale in [#"{"execute":"guest-ne"#, #"{"execute":"guest-network-get-interfaces"}"# + "\n"] where !socket.isEmpty {
            let fd = try FileDescriptors.connectUnix(socket)
            FileDescriptors.writeAll(fd, Array(stale.utf8))
            close(fd)
        }
        r = try f.vt(["guestosinfo", "cloudy"])
        #expect(r.code == 0, "\(r.stderr)")
        let info = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        let os = info["os"] as? [String: Any] ?? [:]
        #expect(os["id"] as? String == "debian" && (os["prettyName"] as? String ?? "").hasPrefix("Debian GNU/Linux")
                && info["hostname"] as? String == "cloud-vm" && (info["guestAgentVersion"] as? String ?? "").isEmpty == false, "\(r.stdout)")

        #expect(try f.vt(["delete", "vm", "cloudy"]).code == 0)
        let gone = Date().addingTimeInterval(120)
        while Date() < gone, !qemuProcesses(mentioning: f.runtime).isEmpty { usleep(500_000) }
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }
}
