import Foundation
import Testing
import TestSupport

/// KubeVirt `configMap` volumes: the ConfigMap's keys as files on an ISO
/// labelled `cfgdata` (genisoimage), which the busybox guest's user-data
/// finds by label, mounts and prints.
@Suite(.serialized) struct VMConfigVolumeTests {
    /// A ConfigMap and a Secret as disks, and the user-data from a Secret
    /// (`secretRef`): the script mounts every ISO but the seed and prints its
    /// keys (the guest has no blkid; the label is checked with isoinfo).
    static func yaml(image: String, mapName: String = "settings", initSecret: String = "init") -> String {
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings}
        data:
          greeting: hello-from-a-configmap
          mode.conf: "fast\\n"
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: creds}
        type: Opaque
        data:
          token: c2VjcmV0LXRva2Vu
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: init}
        stringData:
          userdata: |
            #!/bin/sh
            mkdir -p /mnt/cfg
            for D in /dev/vd?; do
              mount -t iso9660 -o ro $D /mnt/cfg 2>/dev/null || continue
              [ -f /mnt/cfg/meta-data ] || for F in /mnt/cfg/*; do echo "cfg $(basename $F)=$(cat $F)"; done
              umount /mnt/cfg
            done
        ---
        apiVersion: kubevirt.io/v1
        kind: VirtualMachineInstance
        metadata: {name: cfgvm}
        spec:
          domain:
            memory: {guest: 256Mi}
            devices:
              disks:
                - {name: root, disk: {bus: virtio}}
                - {name: cloudinit, disk: {bus: virtio}}
                - {name: config, disk: {bus: virtio}}
                - {name: creds, disk: {bus: virtio}}
                - {name: maybe, disk: {bus: virtio}}
          volumes:
            - name: root
              containerDisk: {image: \(image)}
            - name: cloudinit
              cloudInitNoCloud:
                secretRef: {name: \(initSecret)}
            - name: config
              configMap: {name: \(mapName)}
            - name: creds
              secret: {secretName: creds, volumeLabel: OEMDRV}
            - name: maybe
              configMap: {name: not-applied, optional: true}
        """
    }

    @Test func aConfigMapVolumeIsAnISOTheGuestMounts() throws {
        guard let guest = VMRunTests.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        let runtime = makeRuntimeDir()
        let state = runtime + "-state"
        defer { for p in [runtime, state, runtime + ".yaml", runtime + ".sh"] { try? FileManager.default.removeItem(atPath: p) } }
        let env = "VTARGET_STATE_DIR=\(state)"
        var r = try shell("\(env) \(vtarget) image import vtarget-test/busybox:1 \(guest)/x86_64/disk.qcow2", runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        try Self.yaml(image: "vtarget-test/busybox:1").write(toFile: runtime + ".yaml", atomically: true, encoding: .utf8)
        // While the guest runs, the ISO vtarget made (in QEMU's directory, its cwd) is read back with isoinfo.
        try """
            for i in $(seq 1 480); do grep -q 'vtarget-guest: ready' $VTARGET_RUNTIME_DIR/run-*/cfgvm/logs/console.log 2>/dev/null && break; sleep 0.5; done; \
            Q=$(pgrep -f 'qemu-system.*-name cfgvm' | head -1); ISO=/proc/$Q/cwd/disk2.iso; isoinfo -d -i $ISO | grep 'Volume id'; isoinfo -R -f -i $ISO; \
            for D in 3 4; do echo "disk$D $(isoinfo -d -i /proc/$Q/cwd/disk$D.iso | grep 'Volume id') files=$(isoinfo -R -f -i /proc/$Q/cwd/disk$D.iso | wc -l)"; done
            """.write(toFile: runtime + ".sh", atomically: true, encoding: .utf8)
        r = try shell("cd \(repoRoot) && \(env) timeout 300 \(vtarget) run -f \(runtime).yaml --timeout 240s -- sh \(runtime).sh", runtime: runtime)
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("cfg greeting=hello-from-a-configmap") && r.stdout.contains("cfg mode.conf=fast"), "\(r.stdout)")
        #expect(r.stdout.contains("cfg token=secret-token"), "\(r.stdout)")
        #expect(r.stdout.contains("user-data ran exit=0"), "\(r.stdout)")
        #expect(r.stdout.contains("Volume id: cfgdata") && r.stdout.contains("/greeting") && r.stdout.contains("/mode.conf"), "\(r.stdout)")
        // volumeLabel names the disk; an optional ConfigMap that is not there is a disk with no files.
        #expect(r.stdout.contains("disk3 Volume id: OEMDRV files=1") && r.stdout.contains("disk4 Volume id: cfgdata files=0"), "\(r.stdout)")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }

    /// A ConfigMap or cloud-init Secret that is not among the inputs: exit 2
    /// at the volume's file:line:col, with the name it resembles; nothing made or started.
    @Test(arguments: [("setings", "init", "ConfigMap \"setings\" is not among the inputs", "settings"),
                      ("settings", "int", "Secret \"int\" is not among the inputs", "init")])
    func aMissingConfigMapOrSecretIsBadInputBeforeAnythingStarts(map: String, secret: String, message: String, hint: String) throws {
        let runtime = makeRuntimeDir()
        let state = runtime + "-state"
        defer { for p in [runtime, state, runtime + ".yaml", runtime + ".sh"] { try? FileManager.default.removeItem(atPath: p) } }
        try Self.yaml(image: "vtarget-test/busybox:1", mapName: map, initSecret: secret).write(toFile: runtime + ".yaml", atomically: true, encoding: .utf8)
        for verb in ["run", "render"] {
            let r = try shell("cd \(repoRoot) && VTARGET_STATE_DIR=\(state) \(vtarget) \(verb) -f \(runtime).yaml", runtime: runtime)
            #expect(r.code == 2, "\(verb): \(r.stderr)")
            #expect(r.stderr.contains(".yaml:") && r.stderr.contains(message) && r.stderr.contains("did you mean \"\(hint)\"?"),
                    "\(verb): \(r.stderr)")
        }
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: runtime)) ?? []).isEmpty)
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }
}

/// Under the supervisor: `apply` stores the Secret and ConfigMap beside the
/// VM, and the VM's shim gets the ones its volumes name.
@Suite(.serialized) struct VMConfigVolumeSupervisorTests {
    @Test func anAppliedVMReadsItsAppliedSecretAndConfigMap() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        guard try f.importBusyboxGuest() else { return }
        var r: RunResult
        let file = f.work + "/vm.yaml"
        try VMConfigVolumeTests.yaml(image: "vtarget-test/busybox:1").write(toFile: file, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", file])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try f.vt(["get", "secrets"]).stdout.contains("creds"))
        var logs = ""
        for _ in 0..<1200 {
            logs = try f.vt(["logs", "cfgvm"]).stdout
            if logs.contains("vtarget-guest: ready") { break }
            usleep(100_000)
        }
        #expect(logs.contains("cfg greeting=hello-from-a-configmap") && logs.contains("cfg token=secret-token"), "\(logs)")
        #expect(try f.vt(["delete", "-f", file]).code == 0)
    }
}
