import Foundation
import Testing
import TestSupport

/// A VirtualTargetPool of KubeVirt VMs with the busybox guest: the member
/// boots once, is snapshotted when the pool's readiness pattern shows on its
/// console, and a release restores that snapshot (no reboot), its raw
/// hostDisk included (on an overlay; the host file is never written). One boot.
@Suite(.serialized) struct VMPoolTests {
    static let pool = """
        apiVersion: kubetarget.dev/v1alpha1
        kind: VirtualTargetPool
        metadata: {name: vms}
        spec:
          targetRef: {kind: VirtualMachine, name: bb}
          minReady: 1
          maxInstances: 1
          readiness: {device: console, pattern: "vtarget-guest: ready", timeout: 600s}
        """

    /// What the member's shell prints for `line`, typed on its console; "" when
    /// the console did not answer within the few seconds socat waits.
    func type(_ f: SupervisorFixture, _ socket: String, _ line: String) throws -> String {
        let r = try shell("printf '%s\\r' '\(line)' | timeout 8 socat -t3 - UNIX-CONNECT:\(socket)", runtime: f.runtime)
        return r.stdout
    }

    func consoleSocket(_ f: SupervisorFixture, _ member: String) throws -> String? {
        guard let item = try f.instances().first(where: { f.name($0) == member }),
              let serial = (f.status(item)["endpoints"] as? [String: Any])?["serial"] as? [String: String] else { return nil }
        return serial["console"]?.replacingOccurrences(of: "unix://", with: "")
    }

    @Test func aClaimedVMIsWarmAndAReleaseRestoresItsSnapshot() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        guard try f.importBusyboxGuest() else { return }
        var r: RunResult
        let file = f.work + "/vm-pool.yaml"
        // Halted: the VM is only the pool's template, and never runs on its own when the pool goes.
        // Its third disk is a raw hostDisk: the member runs it on an overlay, so it is snapshotted too.
        let scratch = f.work + "/scratch.raw"
        #expect(FileManager.default.createFile(atPath: scratch, contents: Data(count: 1 << 20)))
        let template = VMRunTests.vmYAML(image: "vtarget-test/busybox:1").replacingOccurrences(of: "runStrategy: Always", with: "runStrategy: Halted")
            .replacingOccurrences(of: "            - name: cloudinit\n              disk: {bus: virtio}\n",
                                  with: "            - name: cloudinit\n              disk: {bus: virtio}\n            - name: scratch\n              disk: {bus: virtio}\n")
            + "\n        - name: scratch\n          hostDisk: {path: \(scratch), type: Disk}"
        #expect(template.contains("- name: scratch\n              disk:"), "\(template)")
        try (template + "\n---\n" + Self.pool).write(toFile: file, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "--allow-host-paths", "-f", file])
        #expect(r.code == 0, "\(r.stderr)")
        // The VM a pool names runs only as the pool's members.
        #expect(try f.instances().allSatisfy { f.status($0)["pool"] as? String == "vms" })

        // Claimable once the guest printed its ready line and the shim took the snapshot.
        r = try f.vt(["claim", "vms", "-o", "name", "--timeout", "600s"])
        #expect(r.code == 0, "\(r.stderr)")
        let member = r.stdout.split(separator: "/").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        #expect(member.hasPrefix("vms-"), "\(r.stdout)")
        r = try f.vt(["events"])
        #expect(r.stdout.contains("Snapshotted"), "\(r.stdout)")
        guard let socket = try consoleSocket(f, member) else { Issue.record("no console endpoint for \(member)"); return }

        // The claimer changes the guest: a file in its RAM-backed /tmp.
        var out = try type(f, socket, "echo written >/tmp/claimed; cat /tmp/claimed | tr a-z A-Z")
        #expect(out.contains("WRITTEN"), "\(out)")
        // And its hostDisk (vdc): the write reaches the member's overlay, never the host file.
        out = try type(f, socket, "printf claimed | dd of=/dev/vdc conv=fsync 2>/dev/null; dd if=/dev/vdc bs=7 count=1 2>/dev/null | tr a-z A-Z")
        #expect(out.contains("CLAIMED"), "\(out)")
        #expect(FileManager.default.contents(atPath: scratch) == Data(count: 1 << 20))

        // Released: the snapshot is restored, the member goes back and is claimed again.
        r = try f.vt(["release", member])
        #expect(r.code == 0 && r.stdout.contains("snapshot restored"), "\(r.stdout) \(r.stderr)")
        r = try f.vt(["claim", "vms", "-o", "name", "--timeout", "60s"])
        #expect(r.code == 0 && r.stdout.contains(member), "\(r.stdout) \(r.stderr)")

        // The guest answers at once, without the file, and never booted again.
        out = try type(f, socket, "cat /tmp/claimed 2>&1 | tr a-z A-Z; dd if=/dev/vdc bs=7 count=1 2>/dev/null | od -c | head -1")
        #expect(out.contains("NO SUCH FILE") && !out.contains("WRITTEN"), "\(out)")
        #expect(out.contains("0000000  \\0  \\0") && !out.contains("c   l   a"), "\(out)")
        let logs = try f.vt(["logs", member]).stdout
        #expect(logs.components(separatedBy: "vtarget-guest: booting").count == 2, "\(logs)")
        #expect(try f.instances().first { f.name($0) == member }.map { f.status($0)["restarts"] as? Int } == 0)

        #expect(try f.vt(["release", member]).code == 0)
        // The pool first: while it names the VM, the VM cannot go.
        r = try f.vt(["delete", "vm", "bb"])
        #expect(r.code == 1 && r.stderr.contains("is still needed"), "\(r.code) \(r.stderr)")
        #expect(try f.vt(["delete", "vtp", "vms"]).code == 0)
        #expect(try f.vt(["delete", "vm", "bb"]).code == 0)
        _ = try f.waitFor("no instances", seconds: 30) { $0.isEmpty }
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }

    /// Each member of a pool of a VM with a DataVolume template makes its own
    /// volume, `<template>-<member>` (as each VM of a KubeVirt
    /// VirtualMachinePool gets its own DataVolumes), so two members boot at
    /// once, each on a fresh volume; the member's volume goes with it. Two boots.
    @Test func eachMemberMakesItsOwnDataVolume() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        guard try f.importBusyboxGuest() else { return }
        // The guest marks its data disk (vdb) unless it finds the mark: a shared volume would show it.
        let vm = VMRunTests.vmYAML(image: "vtarget-test/busybox:1")
            .replacingOccurrences(of: "  runStrategy: Always\n", with: """
                  runStrategy: Halted
                  dataVolumeTemplates:
                    - metadata: {name: data}
                      spec: {storage: {resources: {requests: {storage: 16Mi}}}, source: {blank: {}}}

                """)
            .replacingOccurrences(of: "            - name: root\n              disk: {bus: virtio}\n",
                                  with: "            - name: root\n              disk: {bus: virtio}\n            - name: data\n              disk: {bus: virtio}\n")
            .replacingOccurrences(of: "              ports: [{port: 8080}]\n", with: "")
            .replacingOccurrences(of: "echo hello-from-user-data",
                                  with: "if head -c 11 /dev/vdb | grep -q member-mark; then echo mark-found; else printf member-mark >/dev/vdb; sync; echo mark-written; fi")
            + "\n        - {name: data, dataVolume: {name: data}}"
        #expect(vm.contains("- name: data\n              disk:") && vm.contains("dataVolumeTemplates:") && !vm.contains("ports:"), "\(vm)")
        let pool = Self.pool.replacingOccurrences(of: "minReady: 1\n  maxInstances: 1", with: "minReady: 2\n  maxInstances: 2")
        #expect(pool.contains("maxInstances: 2"))
        let file = f.work + "/vm-pool-dv.yaml"
        try (vm + "\n---\n" + pool).write(toFile: file, atomically: true, encoding: .utf8)
        var r = try f.vt(["apply", "-f", file])
        #expect(r.code == 0, "\(r.stderr)")

        var members: [String] = []
        for _ in 0..<2 {
            r = try f.vt(["claim", "vms", "-o", "name", "--timeout", "600s"])
            #expect(r.code == 0, "\(r.stderr)")
            members.append(r.stdout.split(separator: "/").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "")
        }
        #expect(Set(members).count == 2 && members.allSatisfy { $0.hasPrefix("vms-") }, "\(members)")
        let volumes = f.state + "/volumes/default"
        for m in members {
            #expect(FileManager.default.fileExists(atPath: volumes + "/data-\(m).qcow2"), "\((try? FileManager.default.contentsOfDirectory(atPath: volumes)) ?? [])")
            let logs = try f.vt(["logs", m]).stdout
            #expect(logs.contains("mark-written") && !logs.contains("mark-found"), "\(m): \(logs)")
        }
        // The template's own name is never made: the VM runs only as the members.
        #expect(!FileManager.default.fileExists(atPath: volumes + "/data.qcow2"))

        // The members go with the pool, and their volumes with them.
        #expect(try f.vt(["delete", "vtp", "vms"]).code == 0)
        _ = try f.waitFor("no instances", seconds: 60) { $0.isEmpty }
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: volumes)) ?? []).filter { $0.hasPrefix("data") }
        #expect(left.isEmpty, "\(left)")
        #expect(try f.vt(["delete", "vm", "bb"]).code == 0)
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }

    @Test func aPoolOfAMissingVMOrAWrongDeviceIsRefused() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let file = f.work + "/bad-pool.yaml"
        try Self.pool.write(toFile: file, atomically: true, encoding: .utf8)
        var r = try f.vt(["apply", "-f", file])
        #expect(r.code == 2 && r.stderr.contains("bad-pool.yaml:3:") && r.stderr.contains("VirtualMachine \"bb\" is not among the inputs"),
                "\(r.code) \(r.stderr)")
        try (VMRunTests.vmYAML(image: "vtarget-test/busybox:1") + "\n---\n" + Self.pool.replacingOccurrences(of: "device: console", with: "device: uart0"))
            .write(toFile: file, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", file])
        #expect(r.code == 2 && r.stderr.contains("a VM's serial device is \"console\", not \"uart0\""), "\(r.code) \(r.stderr)")
        try Self.pool.replacingOccurrences(of: "kind: VirtualMachine,", with: "kind: VirtualMachineInstance,").write(toFile: file, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", file])
        #expect(r.code == 2 && r.stderr.contains("bad-pool.yaml:5:") && r.stderr.contains("valid: \"QemuVirtualTarget\", \"VirtualMachine\", \"Machine\""),
                "\(r.code) \(r.stderr)")
    }
}
