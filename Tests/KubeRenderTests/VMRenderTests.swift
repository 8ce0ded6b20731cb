import Foundation
import KubeRender
import ResourceKit
import TargetSpec
import TestSupport
import Testing
import YAMLTree

/// VMs for a cluster: KubeVirt's kinds as written, Viti Machines as the
/// Viti operator's VirtualMachine and PVCs.
@Suite struct VMRenderTests {
    static let examples: [String] = {
        let dir = repoRoot + "/examples/kubevirt"
        let kubevirt = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        return kubevirt.map { "examples/kubevirt/" + $0 } + ["examples/kubevirt-vm.yaml", "examples/kubevirt-vm-pool.yaml", "examples/viti-machine.yaml", "examples/viti-machine-pool.yaml"]
    }()

    static func render(_ text: String, path: String = "in.yaml", options: DecodeOptions = DecodeOptions()) throws -> [KubeObject] {
        let (decoded, sources) = try decodeForKube(text, path: path, options: options)
        return try KubeRenderer(options: .init(image: testImage)).render(decoded.resources, sources: sources)
    }

    @Test func everyVMExampleIsCovered() {
        #expect(Self.examples.count >= 16)
    }

    /// Golden/<example>.yaml for every VM example; KubeVirt objects come back
    /// as written except `status`, with vtarget's label and annotations.
    @Test(arguments: examples)
    func exampleGolden(_ path: String) throws {
        var text = try String(contentsOfFile: repoRoot + "/" + path, encoding: .utf8)
        // KubeVirt's VM of the csmall instancetype comes with it, as `kubectl apply -f` of both would.
        if path.hasSuffix("vm-cirros-csmall.yaml") { text = try String(contentsOfFile: repoRoot + "/examples/kubevirt/csmall.yaml", encoding: .utf8) + "\n---\n" + text }
        let objects = try Self.render(text, path: path, options: DecodeOptions(allowHostPaths: true))
        let golden = path.replacingOccurrences(of: "examples/", with: "").replacingOccurrences(of: "/", with: "-")
        try checkKubeGolden(golden, try KubeOutput.text(objects, .yaml))
        let rendered = try jsonObjects(objects)
        #expect(!rendered.isEmpty)
        for o in rendered {
            #expect(o[path: "metadata", "labels", KubeLabels.managedBy] as? String == "vtarget")
            #expect((o[path: "metadata", "annotations", KubeLabels.source] as? String)?.hasPrefix(path + ":") == true)
            #expect(o["status"] == nil)
        }
        guard path.hasPrefix("examples/kubevirt/") else { return }
        // As written: every input document's spec comes back unchanged.
        let inputs = try YAMLParser.parse(text, file: path).map { JSONValue(yaml: $0.root) }
        #expect(inputs.count == rendered.count)
        for (input, output) in zip(inputs, try objects.map { o -> JSONValue in
            guard case .manifest(let m) = o else { throw DiagnosticError([]) }
            return m.body
        }) {
            #expect(input["spec"] == output["spec"], "\(path): \(input["metadata"]?["name"] ?? .null)")
            #expect(input["apiVersion"] == output["apiVersion"] && input["kind"] == output["kind"])
        }
    }

    /// The seed's three Machines (../seeds/viti-kubevirt-operator.md), field
    /// by field as the operator builds them.
    static let seedSmall = """
        apiVersion: vitistack.io/v1alpha1
        kind: Machine
        metadata:
          name: example-machine-small
        spec:
          instanceType: "small"
          name: "example-vm-small"
        """
    static let seedCustom = """
        apiVersion: vitistack.io/v1alpha1
        kind: Machine
        metadata:
          name: example-machine-custom
        spec:
          instanceType: "small"
          name: "example-vm-custom"
          cpu:
            cores: 4
            sockets: 4
            threadsPerCore: 2
          memory: 4294967296  # 4 GB in bytes
        """
    static let seedDisks = """
        apiVersion: vitistack.io/v1alpha1
        kind: Machine
        metadata:
          name: example-machine-with-disks
        spec:
          instanceType: "medium"
          name: "example-vm-storage"
          disks:
            - name: "data-disk"
              size: "10Gi"
              storageClass: "fast-ssd"
            - name: "backup-disk"
              size: "50Gi"
              storageClass: "standard"
        """

    func vm(_ objects: [[String: Any]]) throws -> [String: Any] {
        try #require(objects.first { $0["kind"] as? String == "VirtualMachine" })
    }

    func pvcs(_ objects: [[String: Any]]) -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for o in objects where o["kind"] as? String == "PersistentVolumeClaim" { out[o[path: "metadata", "name"] as! String] = o }
        return out
    }

    /// What every Machine's VirtualMachine has, whatever its class.
    func checkCommon(_ vm: [String: Any], name: String) {
        #expect(vm["apiVersion"] as? String == "kubevirt.io/v1")
        #expect(vm[path: "metadata", "name"] as? String == name)
        #expect(vm[path: "metadata", "namespace"] as? String == "default")
        #expect(vm[path: "metadata", "labels", "vitistack.io/source-machine"] as? String == name)
        #expect(vm[path: "spec", "runStrategy"] as? String == "Always")
        #expect(vm[path: "spec", "template", "metadata", "labels", "vitistack.io/source-machine"] as? String == name)
        let spec = vm[path: "spec", "template", "spec"] as? [String: Any] ?? [:]
        #expect(spec[path: "domain", "cpu", "model"] as? String == "host-model")
        #expect(spec[path: "domain", "machine", "type"] as? String == "q35")
        #expect(spec[path: "domain", "firmware", "bootloader", "efi", "secureBoot"] as? Bool == false)
        #expect(spec[path: "domain", "devices", "interfaces", "0", "name"] as? String == "default")
        #expect(spec[path: "domain", "devices", "interfaces", "0", "model"] as? String == "virtio")
        #expect(spec[path: "domain", "devices", "interfaces", "0", "bridge"] is [String: Any])
        #expect(spec[path: "domain", "devices", "interfaces", "0", "masquerade"] == nil)
        #expect((spec["networks"] as? [[String: Any]])?.count == 1)
        #expect(spec[path: "networks", "0", "name"] as? String == "default")
        #expect(spec[path: "networks", "0", "pod"] is [String: Any])
    }

    func cpu(_ vm: [String: Any]) -> [Int?] {
        ["cores", "sockets", "threads"].map { vm[path: "spec", "template", "spec", "domain", "cpu", $0] as? Int }
    }

    @Test func seedSmallMachine() throws {
        let objects = try jsonObjects(Self.render(Self.seedSmall))
        #expect(objects.map { $0["kind"] as? String } == ["VirtualMachine", "PersistentVolumeClaim"])
        let vm = try vm(objects)
        checkCommon(vm, name: "example-machine-small")
        #expect(cpu(vm) == [1, 1, 1])
        #expect(vm[path: "spec", "template", "spec", "domain", "memory", "guest"] as? String == "1Gi")
        // No disks: the operator's root PVC named as the VM, booting first; no image, so PXE second.
        let disks = vm[path: "spec", "template", "spec", "domain", "devices", "disks"] as? [[String: Any]] ?? []
        #expect(disks.count == 1 && disks[0]["name"] as? String == "root" && disks[0]["bootOrder"] as? Int == 1)
        #expect(disks[0][path: "disk", "bus"] as? String == "virtio")
        #expect(vm[path: "spec", "template", "spec", "volumes", "0", "persistentVolumeClaim", "claimName"] as? String == "example-machine-small")
        #expect(vm[path: "spec", "template", "spec", "domain", "devices", "interfaces", "0", "bootOrder"] as? Int == 2)
        let pvc = try #require(pvcs(objects)["example-machine-small"])
        #expect(pvc[path: "spec", "resources", "requests", "storage"] as? String == "10Gi")
        #expect(pvc[path: "spec", "accessModes"] as? [String] == ["ReadWriteOnce"])
        #expect(pvc[path: "spec", "volumeMode"] as? String == "Block")
        #expect(pvc[path: "spec", "storageClassName"] == nil, "the cluster's default class, as the operator finds it")
        #expect(pvc[path: "metadata", "labels", "disk-type"] as? String == "boot")
        #expect(pvc[path: "metadata", "labels", "vitistack.io/source-machine"] as? String == "example-machine-small")
    }

    @Test func seedMachineWithOverrides() throws {
        let vm = try vm(jsonObjects(Self.render(Self.seedCustom)))
        checkCommon(vm, name: "example-machine-custom")
        #expect(cpu(vm) == [4, 4, 2])
        // An override is written in Mi, as the operator's fmt.Sprintf("%dMi").
        #expect(vm[path: "spec", "template", "spec", "domain", "memory", "guest"] as? String == "4096Mi")
    }

    @Test func seedMachineWithDisks() throws {
        let objects = try jsonObjects(Self.render(Self.seedDisks))
        #expect(objects.map { $0["kind"] as? String } == ["VirtualMachine", "PersistentVolumeClaim", "PersistentVolumeClaim"])
        let vm = try vm(objects)
        checkCommon(vm, name: "example-machine-with-disks")
        #expect(cpu(vm) == [2, 2, 1])
        #expect(vm[path: "spec", "template", "spec", "domain", "memory", "guest"] as? String == "2Gi")
        let disks = vm[path: "spec", "template", "spec", "domain", "devices", "disks"] as? [[String: Any]] ?? []
        #expect(disks.map { $0["name"] as? String } == ["data-disk", "backup-disk"])
        #expect(disks.allSatisfy { $0[path: "disk", "bus"] as? String == "virtio" && $0["bootOrder"] == nil })
        let volumes = vm[path: "spec", "template", "spec", "volumes"] as? [[String: Any]] ?? []
        #expect(volumes.map { $0[path: "persistentVolumeClaim", "claimName"] as? String }
            == ["example-machine-with-disks-data-disk", "example-machine-with-disks-backup-disk"])
        let p = pvcs(objects)
        #expect(p["example-machine-with-disks-data-disk"]?[path: "spec", "resources", "requests", "storage"] as? String == "10Gi")
        #expect(p["example-machine-with-disks-data-disk"]?[path: "spec", "storageClassName"] as? String == "fast-ssd")
        #expect(p["example-machine-with-disks-backup-disk"]?[path: "spec", "resources", "requests", "storage"] as? String == "50Gi")
        #expect(p["example-machine-with-disks-backup-disk"]?[path: "spec", "storageClassName"] as? String == "standard")
        #expect(p.values.allSatisfy { $0[path: "metadata", "labels", "disk-type"] == nil })
    }

    /// Upstream's spelling: a boot disk's PVC is the VM's name, `type` picks
    /// the bus (sata, scsi; nvme and others virtio), an os image boots first
    /// as a containerDisk, and cloud-init is NoCloud `cloudinit` on virtio.
    @Test func upstreamMachine() throws {
        let text = """
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata: {name: up, namespace: lab}
            spec:
              machineClass: large
              disks:
                - {name: sys, sizeGB: 20, boot: true, type: sata}
                - {name: fast, sizeGB: 5, type: nvme}
                - {name: logs, sizeGB: 1, type: scsi}
              userData: |
                #cloud-config
                hostname: up
            """
        let objects = try jsonObjects(Self.render(text))
        let vm = try vm(objects)
        #expect(vm[path: "metadata", "namespace"] as? String == "lab")
        #expect(cpu(vm) == [4, 2, 2])
        #expect(vm[path: "spec", "template", "spec", "domain", "memory", "guest"] as? String == "4Gi")
        let disks = vm[path: "spec", "template", "spec", "domain", "devices", "disks"] as? [[String: Any]] ?? []
        #expect(disks.map { $0["name"] as? String } == ["sys", "fast", "logs", "cloudinit"])
        #expect(disks.map { $0[path: "disk", "bus"] as? String } == ["sata", "virtio", "scsi", "virtio"])
        #expect(disks.map { $0["bootOrder"] as? Int } == [1, nil, nil, nil])
        let volumes = vm[path: "spec", "template", "spec", "volumes"] as? [[String: Any]] ?? []
        #expect(volumes.compactMap { $0[path: "persistentVolumeClaim", "claimName"] as? String } == ["up", "up-fast", "up-logs"])
        #expect(volumes.last?[path: "cloudInitNoCloud", "userData"] as? String == "#cloud-config\nhostname: up")
        let p = pvcs(objects)
        #expect(Set(p.keys) == ["up", "up-fast", "up-logs"])
        #expect(p["up"]?[path: "spec", "resources", "requests", "storage"] as? String == "20Gi")
        #expect(p["up"]?[path: "metadata", "labels", "disk-type"] as? String == "boot")
        #expect(p.values.allSatisfy { $0[path: "spec", "storageClassName"] == nil }, "type is the bus here, not a storage class")
        #expect(p.values.allSatisfy { $0[path: "metadata", "namespace"] as? String == "lab" })
    }

    @Test func armMachineAndOSImage() throws {
        let text = """
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata: {name: pi}
            spec:
              os: {imageID: "localhost/debian-arm:12", architecture: arm64}
              disks: [{name: data, sizeGB: 2, type: sata}]
              sshKeys: ["ssh-ed25519 AAAA me@host"]
            """
        let vm = try vm(jsonObjects(Self.render(text)))
        let spec = vm[path: "spec", "template", "spec"] as? [String: Any] ?? [:]
        #expect(spec[path: "domain", "cpu", "model"] as? String == "host-passthrough")
        #expect(spec[path: "domain", "machine", "type"] as? String == "virt")
        let disks = spec[path: "domain", "devices", "disks"] as? [[String: Any]] ?? []
        #expect(disks.map { $0["name"] as? String } == ["os", "data", "cloudinit"])
        #expect(disks[1][path: "disk", "bus"] as? String == "virtio", "no SATA on arm64")
        #expect(disks[0]["bootOrder"] as? Int == 1)
        #expect(spec[path: "volumes", "0", "containerDisk", "image"] as? String == "localhost/debian-arm:12")
        #expect((spec[path: "volumes", "2", "cloudInitNoCloud", "userData"] as? String)?.contains("ssh-ed25519 AAAA me@host") == true)
        #expect(spec[path: "domain", "devices", "interfaces", "0", "bootOrder"] == nil, "an image boots; no PXE")
    }

    /// A MachineClass is folded into its Machines, not printed.
    @Test func machineClassReplacesTheBuiltIn() throws {
        let text = try String(contentsOfFile: repoRoot + "/examples/viti-machine.yaml", encoding: .utf8)
        let objects = try jsonObjects(Self.render(text))
        #expect(objects.map { $0["kind"] as? String } == ["VirtualMachine", "PersistentVolumeClaim"])
        let vm = try vm(objects)
        #expect(cpu(vm) == [2, 1, 1])
        #expect(vm[path: "spec", "template", "spec", "domain", "memory", "guest"] as? String == "3072Mi")
    }

    @Test func diskWithoutSizeIsRefused() throws {
        let text = """
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata: {name: m}
            spec:
              disks:
                - name: data
            """
        #expect { try Self.render(text) } throws: { e in
            (e as? DiagnosticError)?.description.contains("in.yaml:6:") == true
                && (e as? DiagnosticError)?.description.contains("spec.disks[0].sizeGB: a disk on a cluster is a PersistentVolumeClaim, which needs a size") == true
        }
    }

    /// Cluster-scoped kinds get no namespace; namespaced ones get the one they run in.
    @Test func namespacesFollowTheKind() throws {
        let text = try String(contentsOfFile: repoRoot + "/examples/kubevirt-vm.yaml", encoding: .utf8)
        let objects = try jsonObjects(Self.render(text))
        #expect(objects.map { $0["kind"] as? String } == ["VirtualMachineClusterInstancetype", "VirtualMachineClusterPreference", "VirtualMachine"])
        #expect(objects[0][path: "metadata", "namespace"] == nil && objects[1][path: "metadata", "namespace"] == nil)
        #expect(objects[2][path: "metadata", "namespace"] as? String == "default")
        #expect(objects[2][path: "metadata", "annotations", KubeLabels.madeFrom] as? String == "VirtualMachine/debian-vm")
    }

    /// The API server's reading of YAML scalars.
    @Test func yamlScalarsAsJSON() throws {
        let doc = try #require(YAMLParser.parse("""
            a: 1
            b: "1"
            c: true
            d: 'true'
            e: 1.5
            f: ~
            g: 0x1f
            h: !!str 2
            i: 128Mi
            j: [1, x]
            k: -3
            l: 1e3
            """, file: "t.yaml").first?.root)
        let v = JSONValue(yaml: doc)
        #expect(v["a"] == .int(1) && v["b"] == .string("1") && v["c"] == .bool(true) && v["d"] == .string("true"))
        #expect(v["e"] == .double(1.5) && v["f"] == .null && v["g"] == .int(31) && v["h"] == .string("2"))
        #expect(v["i"] == .string("128Mi") && v["j"] == .array([.int(1), .string("x")]) && v["k"] == .int(-3) && v["l"] == .double(1000))
    }
}
