#if canImport(Glibc)
import Glibc
#endif
import TargetRuntime
import VMRuntime
import YAMLTree

/// A claim's or DataVolume's volume goes with it, as a dynamically
/// provisioned volume (reclaim policy Delete) goes with its claim, and the
/// volumes a VM owns go with the VM; and, as
/// Kubernetes' pvc-protection keeps a claim a pod mounts, one that a stored
/// VM names is not deleted.
extension Supervisor {
    static let volumeKinds: Set<String> = ["PersistentVolumeClaim", "DataVolume"]

    /// The stored VMs and VMIs (`Kind namespace/name`) whose volumes name
    /// volume `name` (a `persistentVolumeClaim` or a `dataVolume`; here both
    /// are the one named volume) or that make it from a dataVolumeTemplate.
    func vmsMounting(volume name: String, among rows: [ResourceRow]) -> [String] {
        rows.compactMap { r -> String? in
            guard r.kind == "VirtualMachine" || r.kind == "VirtualMachineInstance",
                  let root = try? YAMLParser.parse(r.yaml, file: r.name).first?.root else { return nil }
            let spec = r.kind == "VirtualMachine" ? root[path: ["spec", "template", "spec"]] : root[path: ["spec"]]
            var names: [String] = []
            if case .sequence(let volumes)? = spec?[path: ["volumes"]]?.content {
                for v in volumes {
                    names += [v[path: ["persistentVolumeClaim", "claimName"]]?.scalar, v[path: ["dataVolume", "name"]]?.scalar].compactMap { $0 }
                }
            }
            if case .sequence(let templates)? = root[path: ["spec", "dataVolumeTemplates"]]?.content {
                names += templates.compactMap { $0[path: ["metadata", "name"]]?.scalar }
            }
            return names.contains(name) ? "\(r.kind) \(r.namespace)/\(r.name)" : nil
        }
    }

    /// Deletes the volume file of claim or DataVolume `row`, now deleted.
    func removeVolume(of row: ResourceRow) -> String? {
        let root = try? YAMLParser.parse(row.yaml, file: row.name).first?.root
        return removeVolume(row.name, namespace: row.namespace, storageClass: Self.storageClass(of: root?[path: ["spec"]]))
    }

    /// The volumes a deleted VM owns that nothing else names (no other
    /// stored VM, no claim or DataVolume object of theirs): its
    /// `dataVolumeTemplates`' (KubeVirt's VM owns the DataVolumes it makes),
    /// or a Viti Machine's disks (`<machine>-<disk>`, its operator's DataVolumes).
    func removeOwnedVolumes(of vm: ResourceRow, rest: [ResourceRow]) -> [String] {
        guard let root = try? YAMLParser.parse(vm.yaml, file: vm.name).first?.root else { return [] }
        var owned: [(name: String, storageClass: String?)] = []
        switch vm.kind {
        case "VirtualMachine":
            if case .sequence(let templates)? = root[path: ["spec", "dataVolumeTemplates"]]?.content {
                owned = templates.compactMap { t in t[path: ["metadata", "name"]]?.scalar.map { ($0, Self.storageClass(of: t[path: ["spec"]])) } }
            }
        case "Machine":
            if case .sequence(let disks)? = root[path: ["spec", "disks"]]?.content {
                owned = disks.compactMap { d in d[path: ["name"]]?.scalar.map { ("\(vm.name)-\($0)", d[path: ["storageClass"]]?.scalar) } }
            }
        default: return []
        }
        return owned.compactMap { v -> String? in
            guard !rest.contains(where: { Self.volumeKinds.contains($0.kind) && $0.name == v.name }),
                  vmsMounting(volume: v.name, among: rest).isEmpty else { return nil }
            return removeVolume(v.name, namespace: vm.namespace, storageClass: v.storageClass)
        }
    }

    /// A PVC's `storageClassName`, or a DataVolume's `pvc` or `storage` one.
    static func storageClass(of spec: YAMLNode?) -> String? {
        (spec?[path: ["storageClassName"]] ?? spec?[path: ["pvc", "storageClassName"]] ?? spec?[path: ["storage", "storageClassName"]])?.scalar
    }

    /// Deletes volume `name`: the file in its storage class's place, else
    /// wherever one of its name is. Nil when there was none (no VM ever
    /// started on it).
    private func removeVolume(_ name: String, namespace: String, storageClass: String?) -> String? {
        guard let locations = try? VolumeLocations(environment: options.environment) else { return nil }
        let own = locations.path(name, namespace: namespace, storageClass: storageClass)
        guard let path = access(own, F_OK) == 0 ? own : locations.existing(name, namespace: namespace) else { return nil }
        return unlink(path) == 0 ? path : nil
    }
}
