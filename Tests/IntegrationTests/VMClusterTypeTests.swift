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
}
