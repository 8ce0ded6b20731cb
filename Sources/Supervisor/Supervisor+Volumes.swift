#if canImport(Glibc)
import Glibc
#endif
import TargetRuntime
import VMRuntime
import YAMLTree

/// A claim's or DataVolume's volume goes with it, as a dynamically
/// provisioned volume (reclaim policy Delete) goes with its claim; and, as
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

    /// Deletes the volume file of claim or DataVolume `row`, now deleted:
    /// the one in its storage class's place, else wherever one of its name
    /// is. Nil when it had none (no VM ever started on it).
    func removeVolume(of row: ResourceRow) -> String? {
        guard let locations = try? VolumeLocations(environment: options.environment) else { return nil }
        let root = try? YAMLParser.parse(row.yaml, file: row.name).first?.root
        let storageClass = (root?[path: ["spec", "storageClassName"]] ?? root?[path: ["spec", "pvc", "storageClassName"]]
            ?? root?[path: ["spec", "storage", "storageClassName"]])?.scalar
        let own = locations.path(row.name, namespace: row.namespace, storageClass: storageClass)
        guard let path = access(own, F_OK) == 0 ? own : locations.existing(row.name, namespace: row.namespace) else { return nil }
        return unlink(path) == 0 ? path : nil
    }
}
