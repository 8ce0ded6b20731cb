#if canImport(Glibc)
import Glibc
#endif
import TargetRuntime
import VMRuntime
import YAMLTree

/// A claim's or DataVolume's volume goes with it, as a dynamically
/// provisioned volume (reclaim policy Delete) goes with its claim, and a
/// VM's dataVolumeTemplates' volumes go with the VM; and, as
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
        return removeVolume(row.name, namespace: row.namespace, spec: root?[path: ["spec"]])
    }

    /// The volumes of a deleted VM's `dataVolumeTemplates` that nothing else
    /// names (no other stored VM, no claim or DataVolume object of theirs):
    /// KubeVirt's VM owns the DataVolumes it makes, and they go with it.
    func removeTemplateVolumes(of vm: ResourceRow, rest: [ResourceRow]) -> [String] {
        guard vm.kind == "VirtualMachine", let root = try? YAMLParser.parse(vm.yaml, file: vm.name).first?.root,
              case .sequence(let templates)? = root[path: ["spec", "dataVolumeTemplates"]]?.content else { return [] }
        return templates.compactMap { t -> String? in
            guard let name = t[path: ["metadata", "name"]]?.scalar,
                  !rest.contains(where: { Self.volumeKinds.contains($0.kind) && $0.name == name }),
                  vmsMounting(volume: name, among: rest).isEmpty else { return nil }
            return removeVolume(name, namespace: vm.namespace, spec: t[path: ["spec"]])
        }
    }

    /// Deletes volume `name`: the file in its storage class's place (a
    /// PVC's `storageClassName`, a DataVolume's `pvc` or `storage` one),
    /// else wherever one of its name is. Nil when there was none (no VM
    /// ever started on it).
    private func removeVolume(_ name: String, namespace: String, spec: YAMLNode?) -> String? {
        guard let locations = try? VolumeLocations(environment: options.environment) else { return nil }
        let storageClass = (spec?[path: ["storageClassName"]] ?? spec?[path: ["pvc", "storageClassName"]]
            ?? spec?[path: ["storage", "storageClassName"]])?.scalar
        let own = locations.path(name, namespace: namespace, storageClass: storageClass)
        guard let path = access(own, F_OK) == 0 ? own : locations.existing(name, namespace: namespace) else { return nil }
        return unlink(path) == 0 ? path : nil
    }
}
