import Foundation
import KubeRender
import TestSupport
import Testing
import YAMLTree

/// VMs an instance or a pool names, for a cluster: the VM never also on its
/// own; an instance as the VM under the instance's name with its own
/// DataVolumes; a pool as KubeVirt's VirtualMachinePool, a Machine's disks
/// as its DataVolume templates.
@Suite struct VMPoolRenderTests {
    static func example(_ name: String) throws -> String {
        try String(contentsOfFile: repoRoot + "/examples/" + name, encoding: .utf8)
    }

    /// The pool example's VirtualMachine alone.
    static func runnerVM() throws -> String {
        try example("kubevirt-vm-pool.yaml").components(separatedBy: "\n---\n")[0]
    }

    static func instance(_ name: String, of vm: String, kind: String = "VirtualMachine", extra: String = "") -> String {
        """
        apiVersion: kubetarget.dev/v1alpha1
        kind: VirtualTargetInstance
        metadata: {name: \(name)}
        spec:
          targetRef: {kind: \(kind), name: \(vm)}
        \(extra)
        """
    }

    func refusal(_ text: String) -> String {
        do {
            _ = try renderKube(text)
            return "rendered"
        } catch {
            return "\(error)"
        }
    }

    @Test func aPoolOfAKubeVirtVMIsAVirtualMachinePool() throws {
        let objects = try jsonObjects(renderKube(try Self.example("kubevirt-vm-pool.yaml"), path: "examples/kubevirt-vm-pool.yaml"))
        #expect(objects.map { $0["kind"] as? String } == ["VirtualMachinePool"], "the VM runs only as the pool's members")
        let pool = objects[0]
        #expect(pool["apiVersion"] as? String == "pool.kubevirt.io/v1beta1")
        #expect(pool[path: "metadata", "name"] as? String == "ci-vms" && pool[path: "metadata", "namespace"] as? String == "default")
        #expect(pool[path: "metadata", "annotations", "vtarget.dev/made-from"] as? String == "VirtualTargetPool/ci-vms")
        #expect((pool[path: "metadata", "annotations", "vtarget.dev/source"] as? String)?.hasPrefix("examples/kubevirt-vm-pool.yaml:58:") == true)
        #expect(pool[path: "spec", "replicas"] as? Int == 2, "minReady")
        let selector = try #require(pool[path: "spec", "selector", "matchLabels"] as? [String: String])
        let labels = try #require(pool[path: "spec", "virtualMachineTemplate", "metadata", "labels"] as? [String: String])
        #expect(selector == ["app.kubernetes.io/managed-by": "vtarget", "app.kubernetes.io/name": "ci-vms"])
        #expect(selector.allSatisfy { labels[$0.key] == $0.value }, "the selector selects the pool's own VMs")
        // The VM's spec as written: KubeVirt's controller appends each member's index to the template's DataVolume.
        let spec = try #require(pool[path: "spec", "virtualMachineTemplate", "spec"] as? [String: Any])
        #expect(spec["runStrategy"] as? String == "Always")
        #expect(spec[path: "dataVolumeTemplates", "0", "metadata", "name"] as? String == "scratch")
        #expect(spec[path: "template", "spec", "volumes", "1", "dataVolume", "name"] as? String == "scratch")
        #expect(spec[path: "template", "spec", "domain", "memory", "guest"] as? String == "512Mi")
        #expect(pool["status"] == nil && spec["status"] == nil)
    }

    @Test func eachInstanceOfAKubeVirtVMIsAVMWithItsOwnDataVolumes() throws {
        let text = [try Self.runnerVM(), Self.instance("a", of: "ci-runner"),
                    Self.instance("b", of: "ci-runner", extra: "  restartPolicy: OnFailure")].joined(separator: "\n---\n")
        let objects = try jsonObjects(renderKube(text))
        #expect(objects.map { $0["kind"] as? String } == ["VirtualMachine", "VirtualMachine"])
        #expect(objects.map { $0[path: "metadata", "name"] as? String } == ["a", "b"], "no VM ci-runner of its own")
        for (o, name) in zip(objects, ["a", "b"]) {
            #expect(o[path: "spec", "dataVolumeTemplates", "0", "metadata", "name"] as? String == "scratch-\(name)", "as vtarget run names it")
            #expect(o[path: "spec", "template", "spec", "volumes", "1", "dataVolume", "name"] as? String == "scratch-\(name)")
            #expect(o[path: "spec", "template", "spec", "volumes", "0", "containerDisk", "image"] as? String == "localhost/debian-cloud:12")
            #expect(o[path: "metadata", "annotations", "vtarget.dev/made-from"] as? String == "VirtualTargetInstance/\(name)")
        }
        #expect(objects[0][path: "spec", "runStrategy"] as? String == "Always", "the VM's own")
        #expect(objects[1][path: "spec", "runStrategy"] as? String == "RerunOnFailure", "the instance's restartPolicy")
    }

    /// A claim named by `persistentVolumeClaim` is renamed with its template too, as KubeVirt's pool controller does.
    @Test func aTemplateNamedAsAClaimIsRenamedToo() throws {
        let vm = try Self.runnerVM().replacingOccurrences(of: "          dataVolume:\n            name: scratch", with: "          persistentVolumeClaim:\n            claimName: scratch")
        let objects = try jsonObjects(renderKube(vm + "\n---\n" + Self.instance("x", of: "ci-runner", extra: "  restartPolicy: Never")))
        #expect(objects.count == 1)
        #expect(objects[0][path: "spec", "template", "spec", "volumes", "1", "persistentVolumeClaim", "claimName"] as? String == "scratch-x")
        #expect(objects[0][path: "spec", "runStrategy"] as? String == "Once")
    }

    /// A pool's VM is often written Halted, being only a template: its
    /// instances run all the same (once), and a pool's members restart, as locally.
    @Test func aHaltedVMsInstancesAndMembersRunAsTheyDoLocally() throws {
        let halted = try Self.runnerVM().replacingOccurrences(of: "runStrategy: Always", with: "runStrategy: Halted")
        let pool = try Self.example("kubevirt-vm-pool.yaml").components(separatedBy: "\n---\n")[1]
        let objects = try jsonObjects(renderKube([halted, pool, Self.instance("once", of: "ci-runner")].joined(separator: "\n---\n")))
        #expect(objects.map { $0["kind"] as? String } == ["VirtualMachinePool", "VirtualMachine"])
        #expect(objects[0][path: "spec", "virtualMachineTemplate", "spec", "runStrategy"] as? String == "Always")
        #expect(objects[1][path: "spec", "runStrategy"] as? String == "Once")
        let running = try Self.runnerVM().replacingOccurrences(of: "runStrategy: Always", with: "running: false")
        let fromRunning = try jsonObjects(renderKube(running + "\n---\n" + Self.instance("r", of: "ci-runner", extra: "  restartPolicy: Always")))
        #expect(fromRunning[0][path: "spec", "runStrategy"] as? String == "Always" && fromRunning[0][path: "spec", "running"] == nil,
                "KubeVirt refuses running beside runStrategy")
    }

    @Test func aMachinePoolGetsDataVolumeTemplatesAndAnInstanceItsOwnPVCs() throws {
        let objects = try jsonObjects(renderKube(try Self.example("viti-machine-pool.yaml"), path: "examples/viti-machine-pool.yaml"))
        #expect(objects.map { "\($0["kind"] ?? "")/\($0[path: "metadata", "name"] ?? "")" }
                == ["VirtualMachinePool/build-pool", "VirtualMachine/build-debug", "PersistentVolumeClaim/build-debug-cache"], "no VM builder of its own")
        let pool = objects[0]
        let spec = try #require(pool[path: "spec", "virtualMachineTemplate", "spec"] as? [String: Any])
        let template = try #require(spec[path: "dataVolumeTemplates", "0"] as? [String: Any])
        #expect((spec["dataVolumeTemplates"] as? [Any])?.count == 1)
        #expect(template[path: "metadata", "name"] as? String == "build-pool-cache")
        #expect(template[path: "spec", "source", "blank"] as? [String: Any] != nil)
        #expect(template[path: "spec", "storage", "resources", "requests", "storage"] as? String == "4Gi")
        #expect(template[path: "spec", "storage", "volumeMode"] as? String == "Block" && template[path: "spec", "storage", "accessModes", "0"] as? String == "ReadWriteOnce")
        let volumes = try #require(spec[path: "template", "spec", "volumes"] as? [[String: Any]])
        let cache = try #require(volumes.first { $0["name"] as? String == "cache" })
        #expect(cache[path: "dataVolume", "name"] as? String == "build-pool-cache" && cache["persistentVolumeClaim"] == nil)
        #expect(spec[path: "template", "metadata", "labels", "vitistack.io/source-machine"] as? String == "builder")
        #expect(pool[path: "spec", "virtualMachineTemplate", "metadata", "labels", "app.kubernetes.io/name"] as? String == "build-pool")

        let vm = objects[1]
        #expect(vm[path: "metadata", "labels", "vitistack.io/source-machine"] as? String == "builder", "the Machine it came from")
        #expect(vm[path: "metadata", "annotations", "vtarget.dev/made-from"] as? String == "VirtualTargetInstance/build-debug")
        #expect(vm[path: "spec", "runStrategy"] as? String == "Once", "restartPolicy Never")
        let vmVolumes = try #require(vm[path: "spec", "template", "spec", "volumes"] as? [[String: Any]])
        #expect(vmVolumes.contains { $0[path: "persistentVolumeClaim", "claimName"] as? String == "build-debug-cache" })
        #expect(objects[2][path: "spec", "resources", "requests", "storage"] as? String == "4Gi")
    }

    @Test func aMissingVMIsNamedAtTheReference() {
        let pool = """
            apiVersion: kubetarget.dev/v1alpha1
            kind: VirtualTargetPool
            metadata: {name: p}
            spec:
              targetRef: {kind: VirtualMachine, name: ci-runer}
            """
        let message = (try? Self.runnerVM()).map { refusal($0 + "\n---\n" + pool) } ?? ""
        #expect(message.contains("in.yaml:") && message.contains("spec.targetRef.name: VirtualMachine \"ci-runer\" is not among the inputs")
                && message.contains("ci-runner"), "\(message)")
        #expect(refusal(Self.instance("i", of: "nope", kind: "Machine")).contains("Machine \"nope\" is not among the inputs"))
    }

    @Test func aTTLOnAVMsInstanceIsRefusedAtItsLine() throws {
        let text = try Self.runnerVM() + "\n---\n" + Self.instance("t", of: "ci-runner", extra: "  ttl: 10m\n  idleTTL: 5m")
        let message = refusal(text)
        let line = text.components(separatedBy: "\n").firstIndex { $0.hasPrefix("  ttl:") }.map { $0 + 1 } ?? 0
        #expect(message.contains("in.yaml:\(line):") && message.contains("spec.ttl: a VM's instance runs on a cluster as a KubeVirt VirtualMachine, which has no ttl"), "\(message)")
        #expect(message.contains("in.yaml:\(line + 1):") && message.contains("spec.idleTTL:"), "\(message)")
    }

    @Test func anInstanceNamedAsAnotherVMIsRefused() throws {
        let other = try Self.runnerVM().replacingOccurrences(of: "name: ci-runner\n", with: "name: solo\n")
        let text = [try Self.runnerVM(), other, Self.instance("solo", of: "ci-runner")].joined(separator: "\n---\n")
        let message = refusal(text)
        #expect(message.contains("VirtualTargetInstance \"solo\" would make objects named \"solo\" in namespace default, as VirtualMachine \"solo\""), "\(message)")
    }
}
