import Foundation
import Testing
import TestSupport

/// Cluster-scoped VirtualMachineClusterInstancetype and ClusterPreference
/// are one set for the whole supervisor, as on a cluster: applied once, a
/// VM in any namespace uses them. A namespaced instancetype stays in its
/// namespace. Halted VMs only: no QEMU runs.
@Suite(.serialized) struct VMClusterTypeTests {
    static let types = """
        apiVersion: instancetype.kubevirt.io/v1beta1
        kind: VirtualMachineClusterInstancetype
        metadata: {name: shared-small}
        spec: {cpu: {guest: 2}, memory: {guest: 256Mi}}
        ---
        apiVersion: instancetype.kubevirt.io/v1beta1
        kind: VirtualMachineClusterPreference
        metadata: {name: shared-pref}
        spec: {cpu: {preferredCPUTopology: cores}}
        ---
        apiVersion: instancetype.kubevirt.io/v1beta1
        kind: VirtualMachineInstancetype
        metadata: {name: local-small}
        spec: {cpu: {guest: 1}, memory: {guest: 128Mi}}
        """

    static func vm(_ name: String, namespace: String, instancetype: String, kind: String) -> String {
        """
        apiVersion: kubevirt.io/v1
        kind: VirtualMachine
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
          runStrategy: Halted
          instancetype: {name: \(instancetype), kind: \(kind)}
          preference: {name: shared-pref, kind: VirtualMachineClusterPreference}
          template:
            spec:
              domain: {devices: {}}
              volumes: [{name: root, containerDisk: {image: vtarget-test/none:1}}]
        """
    }

    @Test func aClusterInstancetypeServesEveryNamespace() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        try Self.types.write(toFile: f.work + "/types.yaml", atomically: true, encoding: .utf8)
        var r = try f.vt(["apply", "-f", f.work + "/types.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        for ns in ["team-a", "team-b"] {
            try Self.vm("vm-\(ns)", namespace: ns, instancetype: "shared-small", kind: "VirtualMachineClusterInstancetype")
                .write(toFile: f.work + "/\(ns).yaml", atomically: true, encoding: .utf8)
            r = try f.vt(["apply", "-f", f.work + "/\(ns).yaml"])
            #expect(r.code == 0 && r.stdout.contains("virtualmachine.kubevirt.io/vm-\(ns) created"), "\(ns): \(r.stdout)\(r.stderr)")
            r = try f.vt(["get", "vm", "-n", ns])
            #expect(r.code == 0 && r.stdout.contains("vm-\(ns)") && r.stdout.contains("Stopped"), "\(ns): \(r.stdout)\(r.stderr)")
        }
        // The namespaced one is the default namespace's alone.
        try Self.vm("vm-local", namespace: "team-a", instancetype: "local-small", kind: "VirtualMachineInstancetype")
            .write(toFile: f.work + "/local.yaml", atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", f.work + "/local.yaml"])
        #expect(r.code == 2 && r.stderr.contains("spec.instancetype.name") && r.stderr.contains("unknown VirtualMachineInstancetype \"local-small\""),
                "\(r.code) \(r.stderr)")
        #expect(try f.vt(["get", "vm", "vm-local", "-n", "team-a"]).code == 1)
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }

    /// Stored once: applied from two namespaces it is one object, `get`
    /// finds it from any namespace and lists it without a namespace, and
    /// `delete` finds it from any. A type a VM still uses is not deleted:
    /// the refusal names every VM, in every namespace for a cluster type.
    @Test func aClusterTypeIsOneObjectAndIsKeptWhileAVMUsesIt() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        for ns in ["team-a", "team-b"] {
            try """
                apiVersion: instancetype.kubevirt.io/v1beta1
                kind: VirtualMachineClusterInstancetype
                metadata: {name: shared-small, namespace: \(ns)}
                spec: {cpu: {guest: 2}, memory: {guest: 256Mi}}
                """.write(toFile: f.work + "/type-\(ns).yaml", atomically: true, encoding: .utf8)
            let r = try f.vt(["apply", "-f", f.work + "/type-\(ns).yaml"])
            #expect(r.code == 0 && r.stdout.contains("virtualmachineclusterinstancetype.instancetype.kubevirt.io/shared-small"), "\(r.stdout)\(r.stderr)")
        }
        var r = try f.vt(["get", "vmcf", "-A"])
        #expect(r.code == 0 && !r.stdout.contains("NAMESPACE") && r.stdout.components(separatedBy: "shared-small").count == 2, "\(r.stdout)\(r.stderr)")
        r = try f.vt(["get", "vmcf", "shared-small", "-n", "elsewhere"])
        #expect(r.code == 0 && r.stdout.contains("shared-small"), "\(r.stdout)\(r.stderr)")
        try Self.types.write(toFile: f.work + "/types.yaml", atomically: true, encoding: .utf8)
        #expect(try f.vt(["apply", "-f", f.work + "/types.yaml"]).code == 0)
        for ns in ["team-a", "team-b"] {
            try Self.vm("vm-\(ns)", namespace: ns, instancetype: "shared-small", kind: "VirtualMachineClusterInstancetype")
                .write(toFile: f.work + "/\(ns).yaml", atomically: true, encoding: .utf8)
            #expect(try f.vt(["apply", "-f", f.work + "/\(ns).yaml"]).code == 0)
        }
        try Self.vm("vm-local", namespace: "default", instancetype: "local-small", kind: "VirtualMachineInstancetype")
            .write(toFile: f.work + "/local.yaml", atomically: true, encoding: .utf8)
        #expect(try f.vt(["apply", "-f", f.work + "/local.yaml"]).code == 0)

        r = try f.vt(["delete", "vmcf", "shared-small", "-n", "team-a"])
        #expect(r.code == 1 && r.stderr.contains("VirtualMachineClusterInstancetype \"shared-small\" is used by")
                && r.stderr.contains("VirtualMachine team-a/vm-team-a") && r.stderr.contains("VirtualMachine team-b/vm-team-b"), "\(r.code) \(r.stderr)")
        r = try f.vt(["delete", "-f", f.work + "/type-team-b.yaml"])
        #expect(r.code == 1 && r.stderr.contains("is used by"), "\(r.code) \(r.stderr)")
        r = try f.vt(["delete", "vmcp", "shared-pref"])
        #expect(r.code == 1 && r.stderr.contains("VirtualMachineClusterPreference \"shared-pref\" is used by")
                && r.stderr.contains("VirtualMachine default/vm-local") && r.stderr.contains("spec.preference"), "\(r.code) \(r.stderr)")
        r = try f.vt(["delete", "vmf", "local-small"])
        #expect(r.code == 1 && r.stderr.contains("VirtualMachineInstancetype \"local-small\" is used by VirtualMachine default/vm-local:")
                && !r.stderr.contains("team-"), "\(r.code) \(r.stderr)")
        #expect(try f.vt(["get", "vmcf", "shared-small"]).code == 0)

        for (ns, vm) in [("team-a", "vm-team-a"), ("team-b", "vm-team-b"), ("default", "vm-local")] {
            #expect(try f.vt(["delete", "vm", vm, "-n", ns]).code == 0)
        }
        r = try f.vt(["delete", "-f", f.work + "/type-team-b.yaml"])
        #expect(r.code == 0 && r.stdout.contains("shared-small deleted"), "\(r.code) \(r.stdout)\(r.stderr)")
        r = try f.vt(["delete", "vmcp", "shared-pref", "-n", "team-b"])
        #expect(r.code == 0, "\(r.code) \(r.stderr)")
        #expect(try f.vt(["delete", "vmf", "local-small"]).code == 0)
        r = try f.vt(["get", "vmcf", "-A"])
        #expect(!r.stdout.contains("shared-small"), "\(r.stdout)")
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }
}
