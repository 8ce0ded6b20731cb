import Foundation
import Testing
import TestSupport

/// The VM kinds through the real CLI and supervisor: stored, listed by every
/// spelling kubectl accepts, deleted; bad VMs refused with exit 2 and a
/// position; `run` says plainly that VMs do not run yet. No QEMU is started.
@Suite(.serialized) struct VMApplyTests {
    @Test func applyGetDeleteVirtualMachine() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        var r = try f.vt(["apply", "-f", "examples/kubevirt/vm-cirros.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("virtualmachine.kubevirt.io/vm-cirros created"), "\(r.stdout)")
        for word in ["vm", "vms", "virtualmachine.kubevirt.io", "virtualmachines"] {
            r = try f.vt(["get", word])
            #expect(r.code == 0 && r.stdout.hasPrefix("NAME") && r.stdout.contains("vm-cirros"), "\(word): \(r.stdout) \(r.stderr)")
        }
        r = try f.vt(["get", "vm"])
        #expect(r.stdout.split(separator: "\n").first?.split(separator: " ", omittingEmptySubsequences: true) == ["NAME", "AGE", "STATUS", "READY"], "\(r.stdout)")
        r = try f.vt(["get", "vm", "-o", "wide"])
        #expect(r.stdout.contains("RUNSTRATEGY") && r.stdout.contains("Halted"), "\(r.stdout)")
        r = try f.vt(["get", "vmi"])
        #expect(r.stdout.contains("No resources found"), "\(r.stdout)")
        r = try f.vt(["get", "vm", "vm-cirros", "-o", "yaml"])
        #expect(r.stdout.contains("kind: VirtualMachine") && r.stdout.contains("runStrategy: Halted"), "\(r.stdout)")
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)

        // An instancetype applied before, and so stored in another row, resolves too.
        r = try f.vt(["apply", "-f", "examples/kubevirt/csmall.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["apply", "-f", "examples/kubevirt/vm-cirros-csmall.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        // ... and one still in use by a VM is not deleted from under it.
        r = try f.vt(["delete", "vminstancetype", "csmall"])
        #expect(r.code == 1 && r.stderr.contains("VirtualMachineInstancetype \"csmall\" is used by VirtualMachine default/vm-cirros-csmall")
                && r.stderr.contains("spec.instancetype"), "\(r.code) \(r.stderr)")
        r = try f.vt(["get", "vminstancetype"])
        #expect(r.stdout.contains("csmall"), "\(r.stdout)")

        r = try f.vt(["apply", "-f", "examples/viti-machine.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try f.vt(["get", "machines"])
        #expect(r.stdout.hasPrefix("NAME") && r.stdout.contains("viti-web") && r.stdout.contains("medium"), "\(r.stdout)")
        #expect(!r.stdout.contains("vm-cirros"), "\(r.stdout)")
        r = try f.vt(["get", "mc"])
        #expect(r.stdout.contains("medium") && r.stdout.contains("2Gi"), "\(r.stdout)")
        // A Machine's disks are volumes it owns (`<machine>-<disk>`): they go with it.
        let volume = f.state + "/volumes/default/viti-web-data.qcow2"
        try FileManager.default.createDirectory(atPath: f.state + "/volumes/default", withIntermediateDirectories: true)
        r = try shell("qemu-img create -q -f qcow2 \(volume) 1M", runtime: f.runtime)
        #expect(r.code == 0 && FileManager.default.fileExists(atPath: volume), "\(r.stderr)")
        r = try f.vt(["delete", "machines", "viti-web"])
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: volume), "the Machine's disk outlived it")

        r = try f.vt(["delete", "vm", "vm-cirros"])
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        r = try f.vt(["get", "vm", "vm-cirros"])
        #expect(r.code == 1 && r.stderr.contains("not found"), "\(r.stderr)")
        r = try f.vt(["get", "vms"])
        #expect(r.stdout.contains("vm-cirros-csmall") && !r.stdout.contains("vm-cirros "), "\(r.stdout)")
    }

    @Test func badVirtualMachineIsRefusedWithExitTwo() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let bad = f.work + "/bad-vm.yaml"
        try """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachine
            metadata: {name: bad}
            spec:
              runStrategy: Always
              template:
                spec:
                  domain:
                    memory: {guest: 32Mi}

            """.write(toFile: bad, atomically: true, encoding: .utf8)
        var r = try f.vt(["apply", "-f", bad])
        #expect(r.code == 2 && r.stderr.contains("bad-vm.yaml:9:25: error: spec.template.spec.domain.memory.guest: 32Mi is below the minimum of 64Mi"), "\(r.stderr)")
        // The instancetype lives in another file that was not given.
        r = try f.vt(["apply", "-f", "examples/kubevirt/vm-cirros-csmall.yaml"])
        #expect(r.code == 2 && r.stderr.contains("vm-cirros-csmall.yaml:11:11: error: spec.instancetype.name: unknown VirtualMachineInstancetype \"csmall\""), "\(r.stderr)")
        r = try f.vt(["get", "vms"])
        #expect(r.stdout.contains("No resources found"), "\(r.stdout)")
    }

    /// KubeVirt's example as written runs here once its image is in the
    /// store; until then run and render say which command adds it (not bad
    /// input: exit 1), and nothing starts.
    @Test func runAndRenderNameTheMissingImage() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        for verb in ["run", "render"] {
            let r = try f.vt([verb, "-f", "examples/kubevirt/vm-cirros.yaml"])
            #expect(r.code == 1 && r.stderr.contains("is not in the local store; add it with `vtarget image pull registry:5000/kubevirt/cirros-container-disk-demo:devel`"),
                    "\(verb): \(r.code) \(r.stderr)")
        }
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }
}
