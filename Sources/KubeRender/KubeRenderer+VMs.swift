import MachineCatalog
import ResourceKit
import TargetSpec
import VMSpec
import YAMLTree

/// VMs for a cluster with KubeVirt: KubeVirt's own kinds as written, and a
/// Viti Machine as the KubeVirt VirtualMachine and PVCs the Viti operator
/// (vitistack/kubevirt-operator) makes of it.
extension KubeRenderer {
    /// The labels the operator puts on everything it makes for a Machine.
    public static let vitiSourceMachine = "vitistack.io/source-machine"
    /// The operator's size for the root PVC of a Machine without disks.
    static let vitiDefaultRootSize = "10Gi"

    /// KubeVirt kinds (VirtualMachine, VirtualMachineInstance, instancetypes,
    /// preferences) go to the cluster as written: `status` dropped, nothing
    /// defaulted, vtarget's label and annotations added.
    func passThrough(_ r: Resource, document: YAMLNode?) -> KubeObject? {
        guard let document else { return nil }
        let meta = r.metadata
        var body = JSONValue(yaml: document).removing("status")
        var metadata = body["metadata"] ?? .object([])
        var labels = metadata["labels"] ?? .object([])
        labels = labels.setting(KubeLabels.managedBy, .string(KubeLabels.manager))
        metadata = metadata.setting("labels", labels)
        metadata = metadata.setting("annotations", Self.madeFrom((r.kind, meta.name, meta.location), over: metadata["annotations"]))
        if Self.namespaced(r), metadata["namespace"] == nil { metadata = metadata.setting("namespace", .string(meta.namespace)) }
        body = body.setting("metadata", metadata)
        return .manifest(Manifest(kind: r.kind, name: meta.name, body: body))
    }

    static func namespaced(_ r: Resource) -> Bool {
        switch r {
        case .instancetype(let t): return !t.cluster
        case .preference(let p): return !p.cluster
        case .machineClass: return false
        default: return true
        }
    }

    /// A Viti Machine as the operator maps it (its `buildVMSpec`,
    /// `buildDisksAndVolumes`, `CreatePVCsFromDiskSpecs`): a VirtualMachine
    /// named as the Machine, runStrategy Always, the class's CPU topology
    /// (model host-model, host-passthrough on arm64) and memory (the
    /// class's quantity, an override in Mi), EFI without secure boot, one
    /// virtio interface with bridge binding on the pod network (booting
    /// second, by PXE, when there is no `os.imageID`), and per disk a PVC —
    /// `<vm>` for the boot disk, `<vm>-<disk>` for the others, ReadWriteOnce,
    /// volumeMode Block, `sizeGB` in Gi — on the bus `type` names (nvme and
    /// the rest virtio, sata, scsi). A Machine without disks gets the
    /// operator's 10Gi root PVC `<vm>`. What vtarget adds: the `os` image as
    /// a containerDisk booting first (the operator only knows ISO URLs), a
    /// seed's `storageClass` as the PVC's class (else the cluster's
    /// default, as the operator picks), and sshKeys/cloudInit/userData as
    /// the one NoCloud user data `vtarget run` gives the guest.
    ///
    /// `name` and `origin` are an instance's when the Machine runs as one
    /// (`vmUserObjects`): the VM and its PVCs take the instance's name,
    /// as they do locally, and say they were made from the instance; the
    /// source-machine label still names the Machine.
    func vitiObjects(_ m: VitiMachine, document: YAMLNode?, name: String? = nil,
                     origin: (kind: String, name: String, location: SourceLocation)? = nil) throws(DiagnosticError) -> [KubeObject] {
        guard let def = m.definition else { return [] }
        let vm = name ?? m.metadata.name
        let ns = m.metadata.namespace
        let arm = def.architecture == .arm64
        let labels: [(String, JSONValue)] = [(KubeLabels.managedBy, .string(KubeLabels.manager)), (Self.vitiSourceMachine, .string(m.metadata.name))]
        let from = origin ?? ("Machine", m.metadata.name, m.metadata.location)
        let annotations = Self.madeFrom(from, over: nil)
        func metadata(_ name: String, extra: [(String, JSONValue)] = []) -> JSONValue {
            ["name": .string(name), "namespace": .string(ns), "labels": .object(labels + extra), "annotations": annotations]
        }
        let rawDisks = document?[path: ["spec", "disks"]]
        func raw(_ i: Int, _ key: String) -> String? {
            guard case .sequence(let items)? = rawDisks?.content, i < items.count else { return nil }
            return items[i][key]?.scalar
        }

        var disks: [JSONValue] = []
        var volumes: [JSONValue] = []
        var objects: [KubeObject] = []
        var diags: [Diagnostic] = []
        func pvc(_ name: String, size: String, storageClass: String?, boot: Bool) {
            var spec: JSONValue = [
                "accessModes": ["ReadWriteOnce"],
                "resources": ["requests": ["storage": .string(size)]],
                "volumeMode": "Block",
            ]
            if let storageClass { spec = spec.setting("storageClassName", .string(storageClass)) }
            objects.append(.manifest(Manifest(kind: "PersistentVolumeClaim", name: name, body: [
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": metadata(name, extra: boot ? [("disk-type", "boot")] : []),
                "spec": spec,
            ])))
        }
        if let image = m.image {
            disks.append(["name": "os", "disk": ["bus": "virtio"], "bootOrder": 1])
            volumes.append(["name": "os", "containerDisk": ["image": .string(image)]])
        }
        if m.disks.isEmpty && m.image == nil {
            disks.append(["name": "root", "disk": ["bus": "virtio"], "bootOrder": 1])
            volumes.append(["name": "root", "persistentVolumeClaim": ["claimName": .string(vm)]])
            pvc(vm, size: Self.vitiDefaultRootSize, storageClass: nil, boot: true)
        }
        for (i, d) in m.disks.enumerated() {
            let type = raw(i, "type")
            let bus: String
            switch type {
            case "sata": bus = arm ? "virtio" : "sata"
            case "scsi": bus = "scsi"
            default: bus = "virtio"
            }
            var disk: JSONValue = ["name": .string(d.name), "disk": ["bus": .string(bus)]]
            if d.boot { disk = disk.setting("bootOrder", 1) }
            disks.append(disk)
            let claim = d.boot ? vm : "\(vm)-\(d.name)"
            volumes.append(["name": .string(d.name), "persistentVolumeClaim": ["claimName": .string(claim)]])
            guard let bytes = d.sizeBytes else {
                diags.append(Diagnostic(.error, at: d.location, field: d.path + ".sizeGB",
                    "a disk on a cluster is a PersistentVolumeClaim, which needs a size: give sizeGB (GiB) or size (a quantity such as 10Gi)"))
                continue
            }
            pvc(claim, size: Quantity.format(bytes), storageClass: type == nil ? d.storageClass : nil, boot: d.boot)
        }
        if !diags.isEmpty { throw DiagnosticError(diags) }
        for d in def.disks {
            guard case .cloudInit(let ci) = d.source, let userData = ci.userData else { continue }
            disks.append(["name": "cloudinit", "disk": ["bus": "virtio"]])
            volumes.append(["name": "cloudinit", "cloudInitNoCloud": ["userData": .string(userData)]])
        }
        let memory = m.memoryBytes.map { "\($0.value / (1 << 20))Mi" } ?? Quantity.format(def.memoryBytes)
        var interface: JSONValue = ["name": "default", "model": "virtio", "bridge": .object([])]
        if document?[path: ["spec", "os", "imageID"]]?.scalar == nil { interface = interface.setting("bootOrder", 2) }
        let domain: JSONValue = [
            "cpu": ["model": arm ? "host-passthrough" : "host-model", "cores": .int(def.cpu.cores),
                    "sockets": .int(def.cpu.sockets), "threads": .int(def.cpu.threads)],
            "memory": ["guest": .string(memory)],
            "machine": ["type": .string(arm ? "virt" : def.machineType)],
            "firmware": ["bootloader": ["efi": ["secureBoot": false]]],
            "devices": ["disks": .array(disks), "interfaces": [interface]],
        ]
        let body: JSONValue = [
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": metadata(vm),
            "spec": [
                "runStrategy": "Always",
                "template": [
                    "metadata": ["labels": .object(labels)],
                    "spec": [
                        "domain": domain,
                        "networks": [["name": "default", "pod": .object([])]],
                        "volumes": .array(volumes),
                    ],
                ],
            ],
        ]
        return [.manifest(Manifest(kind: "VirtualMachine", name: vm, body: body))] + objects
    }
}
