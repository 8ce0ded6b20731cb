#if canImport(Glibc)
import Glibc
#endif
import ResourceKit
import TargetRuntime
import TargetSpec
import VMRuntime
import VMSpec
import YAMLTree

/// A claim's or DataVolume's volume goes with it, as a dynamically
/// provisioned volume (reclaim policy Delete) goes with its claim, and the
/// volumes a VM owns go with the VM; and, as Kubernetes' pvc-protection
/// keeps a claim a pod mounts, one that a stored VM names is not deleted.
extension Supervisor {
    static let volumeKinds: Set<String> = ["PersistentVolumeClaim", "DataVolume"]

    /// For each volume name the stored VMs and VMIs name, those VMs
    /// (`Kind namespace/name`): in their volumes (a `persistentVolumeClaim`
    /// or a `dataVolume`; here both are the one named volume) or as a
    /// dataVolumeTemplate they make.
    func volumeUsers(among rows: [ResourceRow]) -> [String: [String]] {
        var users: [String: [String]] = [:]
        for r in rows where r.kind == "VirtualMachine" || r.kind == "VirtualMachineInstance" {
            guard let root = try? YAMLParser.parse(r.yaml, file: r.name).first?.root else { continue }
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
            for name in Set(names) { users[name, default: []].append("\(r.kind) \(r.namespace)/\(r.name)") }
        }
        return users
    }

    /// Deletes the volume files that go with deleted `row`, nothing else
    /// (`rest`, its namespace's other objects) naming them; their paths.
    /// A claim or DataVolume takes its own volume; a VM the volumes it
    /// owns: its `dataVolumeTemplates`' (KubeVirt's VM owns the
    /// DataVolumes it makes), a Viti Machine its disks (`<machine>-<disk>`,
    /// its operator's DataVolumes).
    func removeVolumes(of row: ResourceRow, rest: [ResourceRow]) -> [String] {
        guard let root = try? YAMLParser.parse(row.yaml, file: row.name).first?.root else { return [] }
        var going: [(name: String, storageClass: String?)] = []
        switch row.kind {
        case "PersistentVolumeClaim", "DataVolume":
            going = [(row.name, VolumeLocations.storageClass(ofClaimSpec: root[path: ["spec"]]))]
        case "VirtualMachine", "Machine":
            if row.kind == "VirtualMachine", case .sequence(let templates)? = root[path: ["spec", "dataVolumeTemplates"]]?.content {
                going = templates.compactMap { t in
                    t[path: ["metadata", "name"]]?.scalar.map { ($0, VolumeLocations.storageClass(ofClaimSpec: t[path: ["spec"]])) }
                }
            }
            if row.kind == "Machine", case .sequence(let disks)? = root[path: ["spec", "disks"]]?.content {
                going = disks.compactMap { d in d[path: ["name"]]?.scalar.map { ("\(row.name)-\($0)", d[path: ["storageClass"]]?.scalar) } }
            }
            // What another VM names, or a claim or DataVolume object of its name stands for, stays.
            let claims = Set(rest.filter { Self.volumeKinds.contains($0.kind) }.map(\.name))
            let used = going.isEmpty ? [:] : volumeUsers(among: rest)
            going.removeAll { claims.contains($0.name) || used[$0.name] != nil }
        default:
            return []
        }
        guard !going.isEmpty, let locations = try? VolumeLocations(environment: options.environment) else { return [] }
        return going.compactMap { v -> String? in
            // The file in its storage class's place, else wherever one of its name is (none: no VM ever started on it).
            let own = locations.path(v.name, namespace: row.namespace, storageClass: v.storageClass)
            guard let path = access(own, F_OK) == 0 ? own : locations.existing(v.name, namespace: row.namespace) else { return nil }
            return unlink(path) == 0 ? path : nil
        }
    }

    /// The volumes an instance made as its own (`VMDefinition.running(as:)`:
    /// a pool's member's, or a VirtualTargetInstance's, of its VM's
    /// DataVolume templates and Viti disks), read from the spec it ran.
    func ownVolumes(of row: InstanceRow, spec: String) -> [(name: String, storageClass: String?)] {
        // Only a VM (target `Kind/name`) or a pool's member runs as an instance of a VM: a board's spec is not read again.
        guard row.target.contains("/") || row.pool != nil else { return [] }
        let decoder = ResourceDecoder(catalog: catalog, options: DecodeOptions(
            strict: false, allowHostPaths: row.options.allowHostPaths, allowExtraArgs: row.options.allowExtraArgs))
        guard let resources = try? decoder.decode([SourceFile(path: row.name, directory: row.specDirectory, bytes: Array(spec.utf8))]).resources,
              let vm = (try? Workload.vms(from: resources, boards: []))?.first(where: { $0.name == row.name }) else { return [] }
        // A claim or DataVolume object of the name stands for the volume: it goes with that object.
        var claims = Set<String>()
        for case .volumeClaim(let c) in resources { claims.insert(c.metadata.name) }
        return vm.vm.disks.compactMap { d in
            guard d.owner == .instance, case .volume(let name, _, let storageClass, _) = d.source, !claims.contains(name) else { return nil }
            return (name, storageClass)
        }
    }

    /// Deletes an instance's own volumes once it is gone for good (its
    /// QEMU stopped), as KubeVirt deletes a pool's VM with the DataVolumes
    /// it made; their paths.
    func removeOwnVolumes(of row: InstanceRow, spec: String?) -> [String] {
        guard let spec, let locations = try? VolumeLocations(environment: options.environment) else { return [] }
        return ownVolumes(of: row, spec: spec).compactMap { v in
            let own = locations.path(v.name, namespace: row.namespace, storageClass: v.storageClass)
            return unlink(own) == 0 ? own : nil
        }
    }
}
