import ResourceKit
import TargetSpec
import VMSpec
import YAMLTree

/// VMs that a VirtualTargetInstance or a VirtualTargetPool names, for a
/// cluster. As locally (`Workload.vms`), such a VM runs only as those
/// instances, never also on its own:
/// - an instance becomes the VM under the instance's name, each DataVolume
///   template `<template>-<instance>` (a Machine's PVCs `<instance>-<disk>`),
///   the names `vtarget run` gives them, so one VM serves several instances;
/// - a pool becomes KubeVirt's VirtualMachinePool of `minReady` replicas.
///   Its controller names members `<pool>-<index>` and their DataVolumes
///   `<template>-<index>` (vtarget's members are `<pool>-<5 hex>` and
///   `<template>-<member>`: a cluster's names differ anyway). A Machine's
///   PVCs become blank DataVolume templates of the PVC's size, class and
///   mode: that is the only way KubeVirt gives each member its own disk.
/// What has no KubeVirt counterpart is refused, not dropped: an instance's
/// `ttl` and `idleTTL` (a VirtualMachine has no deadline). The readiness
/// pattern and a pool's claims, `maxInstances` and `recycle` are vtarget's
/// own bookkeeping of warm members and claims, which a cluster does not
/// have, as for a board's pool (a Deployment of `minReady`).
extension KubeRenderer {
    /// The VirtualMachinePool's API, as in the vendored KubeVirt OpenAPI
    /// (v1alpha1 before KubeVirt 1.8).
    public static let vmPoolAPIVersion = "pool.kubevirt.io/v1beta1"

    /// An instance or a pool that names a VM.
    struct VMUser {
        var kind: String
        var metadata: ObjectMeta
        var targetKind: String
        var targetName: String
        /// An instance's; nil for a pool.
        var lifecycle: Lifecycle?
        /// A pool's `minReady`; nil for an instance.
        var replicas: Int?
        var target: String { KubeRenderer.key(targetKind, metadata.namespace, targetName) }
    }

    /// Every instance's and pool's objects, in input order, with what was refused.
    func vmUserObjects(_ users: [VMUser], kubevirt: [Resource], machines: [VitiMachine],
                       documents: [String: YAMLNode]) -> (objects: [KubeObject], problems: [Diagnostic]) {
        var objects: [KubeObject] = []
        var diags: [Diagnostic] = []
        for user in users {
            let document = documents[Self.key(user.kind, user.metadata.namespace, user.metadata.name)]
            if let l = user.lifecycle {
                for (field, value) in [("ttl", l.ttlSeconds), ("idleTTL", l.idleTTLSeconds)] where value != nil {
                    diags.append(Diagnostic(.error, at: document?[path: ["spec", field]]?.location ?? user.metadata.location, field: "spec." + field,
                        "a VM's instance runs on a cluster as a KubeVirt VirtualMachine, which has no \(field); "
                        + "remove spec.\(field) to render it (vtarget's supervisor still applies it locally)"))
                }
            }
            do {
                guard let made = try vmObjects(for: user, kubevirt: kubevirt, machines: machines, documents: documents) else {
                    let known = (user.targetKind == "Machine" ? machines.map(\.metadata) : kubevirt.filter { $0.kind == user.targetKind }.map(\.metadata))
                        .filter { $0.namespace == user.metadata.namespace }.map(\.name).sorted()
                    diags.append(Diagnostic(.error, at: user.metadata.location, field: "spec.targetRef.name",
                        "\(user.targetKind) \"\(user.targetName)\" is not among the inputs; " + Suggestion.hint(user.targetName, in: known)))
                    continue
                }
                objects += made
            } catch {
                diags += error.diagnostics
            }
        }
        return (objects, diags)
    }

    /// The VM (and a Machine's PVCs) the user runs, or a pool of it; nil when the VM is not among the inputs.
    private func vmObjects(for user: VMUser, kubevirt: [Resource], machines: [VitiMachine],
                           documents: [String: YAMLNode]) throws(DiagnosticError) -> [KubeObject]? {
        let ns = user.metadata.namespace
        let origin = (kind: user.kind, name: user.metadata.name, location: user.metadata.location)
        var vm: JSONValue
        var claims: [JSONValue] = []
        // How the VM restarts when its instance does not say: a Machine's is Always.
        var ownPolicy = RestartPolicy.Always
        if user.targetKind == "Machine" {
            guard let m = machines.first(where: { $0.metadata.namespace == ns && $0.metadata.name == user.targetName }) else { return nil }
            var made: [JSONValue] = []
            for o in try vitiObjects(m, document: documents[Self.key("Machine", ns, m.metadata.name)], name: user.metadata.name, origin: origin) {
                if case .manifest(let manifest) = o { made.append(manifest.body) }
            }
            guard let first = made.first else { return [] }
            vm = first
            claims = Array(made.dropFirst())
        } else {
            guard let r = kubevirt.first(where: { $0.kind == user.targetKind && $0.metadata.namespace == ns && $0.metadata.name == user.targetName }),
                  case .manifest(let manifest)? = passThrough(r, document: documents[Self.key(r.kind, ns, r.metadata.name)]
                                                                ?? documents[Self.key(r.kind, "default", r.metadata.name)]) else { return nil }
            vm = manifest.body
            ownPolicy = r.vmDefinition.map { RunnableVM($0).lifecycle.restartPolicy ?? .Always } ?? .Always
            let metadata = (vm["metadata"] ?? .object([])).setting("name", .string(user.metadata.name))
            vm = vm.setting("metadata", metadata.setting("annotations", Self.madeFrom(origin, over: metadata["annotations"])))
        }
        // Locally an instance of a VM runs whatever the VM's runStrategy (a
        // pool's VM is often Halted, being only a template), restarting as
        // its instance says, else as the VM says (Halted, Manual and Once
        // as Never); a pool's members always restart. So on the cluster.
        let policy = user.replicas != nil ? .Always : user.lifecycle?.restartPolicy ?? ownPolicy
        vm = vm.updating(["spec"]) { $0.removing("running").setting("runStrategy", .string(Self.runStrategy(policy))) }
        if let replicas = user.replicas {
            return [.manifest(Manifest(kind: "VirtualMachinePool", name: user.metadata.name,
                                       body: Self.pool(of: vm, claims: claims, replicas: replicas, origin: origin, namespace: ns)))]
        }
        if user.targetKind != "Machine" {
            vm = Self.renamingDataVolumes(vm) { $0 + "-" + user.metadata.name }
        }
        return [.manifest(Manifest(kind: "VirtualMachine", name: user.metadata.name, body: vm))]
            + claims.map { .manifest(Manifest(kind: "PersistentVolumeClaim", name: $0["metadata"]?["name"]?.stringValue ?? "", body: $0)) }
    }

    /// KubeVirt's run strategy for an instance's restart policy: the
    /// inverse of how `Workload` reads a VM's runStrategy.
    static func runStrategy(_ policy: RestartPolicy) -> String {
        switch policy {
        case .Always: return "Always"
        case .OnFailure: return "RerunOnFailure"
        case .Never: return "Once"
        }
    }

    /// vtarget's annotations saying the object was made from `origin`, over the object's own.
    static func madeFrom(_ origin: (kind: String, name: String, location: SourceLocation), over annotations: JSONValue?) -> JSONValue {
        (annotations ?? .object([]))
            .setting(KubeLabels.madeFrom, .string("\(origin.kind)/\(origin.name)"))
            .setting(KubeLabels.source, .string("\(origin.location)"))
    }

    /// The VM's DataVolume templates renamed by `rename`, and every volume
    /// that names one (as `dataVolume` or `persistentVolumeClaim`, both of
    /// which KubeVirt accepts) renamed with it, as KubeVirt's pool controller does.
    static func renamingDataVolumes(_ vm: JSONValue, _ rename: (String) -> String) -> JSONValue {
        guard case .array(let templates)? = vm["spec"]?["dataVolumeTemplates"] else { return vm }
        var names: [String: String] = [:]
        let renamed = templates.map { t -> JSONValue in
            guard let name = t["metadata"]?["name"]?.stringValue else { return t }
            names[name] = rename(name)
            return t.updating(["metadata"]) { $0.setting("name", .string(rename(name))) }
        }
        return vm.updating(["spec"]) { $0.setting("dataVolumeTemplates", .array(renamed)) }
            .mappingItems(at: ["spec", "template", "spec", "volumes"]) { v in
                for (source, field) in [("dataVolume", "name"), ("persistentVolumeClaim", "claimName")] {
                    if let old = v[source]?[field]?.stringValue, let new = names[old] {
                        return v.updating([source]) { $0.setting(field, .string(new)) }
                    }
                }
                return v
            }
    }

    /// A VirtualMachinePool of `vm`. A Machine's PVCs (`claims`) become
    /// DataVolume templates of the same name, blank, with the PVC's
    /// storage, and its volumes name them as DataVolumes.
    static func pool(of vm: JSONValue, claims: [JSONValue], replicas: Int,
                     origin: (kind: String, name: String, location: SourceLocation), namespace: String) -> JSONValue {
        var spec = vm["spec"] ?? .object([])
        if !claims.isEmpty {
            let names = Set(claims.compactMap { $0["metadata"]?["name"]?.stringValue })
            let templates: [JSONValue] = claims.map { c in
                [
                    "metadata": ["name": c["metadata"]?["name"] ?? .null],
                    "spec": ["source": ["blank": .object([])], "storage": c["spec"] ?? .object([])],
                ]
            }
            spec = spec.setting("dataVolumeTemplates", .array(templates))
                .mappingItems(at: ["template", "spec", "volumes"]) { v in
                    guard let claim = v["persistentVolumeClaim"]?["claimName"]?.stringValue, names.contains(claim) else { return v }
                    return v.removing("persistentVolumeClaim").setting("dataVolume", ["name": .string(claim)])
                }
        }
        // The selector is the template's labels, as a ReplicaSet's: vtarget's two, beside the VM's own.
        let selector: [(String, JSONValue)] = [(KubeLabels.managedBy, .string(KubeLabels.manager)), (KubeLabels.name, .string(origin.name))]
        var templateLabels = vm["metadata"]?["labels"] ?? .object([])
        for (k, v) in selector { templateLabels = templateLabels.setting(k, v) }
        return [
            "apiVersion": .string(vmPoolAPIVersion), "kind": "VirtualMachinePool",
            "metadata": [
                "name": .string(origin.name), "namespace": .string(namespace),
                "labels": .object(selector),
                "annotations": madeFrom(origin, over: nil),
            ],
            "spec": [
                "replicas": .int(replicas),
                "selector": ["matchLabels": .object(selector)],
                "virtualMachineTemplate": ["metadata": ["labels": templateLabels], "spec": spec],
            ],
        ]
    }
}

extension JSONValue {
    /// The value with the member at `path` (objects only) replaced by
    /// `change` of it; unchanged where the path does not lead to a value.
    func updating(_ path: [String], _ change: (JSONValue) -> JSONValue) -> JSONValue {
        guard let first = path.first else { return change(self) }
        guard let child = self[first] else { return self }
        return setting(first, child.updating(Array(path.dropFirst()), change))
    }

    /// The value with each item of the array at `path` replaced by `change` of it.
    func mappingItems(at path: [String], _ change: (JSONValue) -> JSONValue) -> JSONValue {
        updating(path) { value in
            guard case .array(let items) = value else { return value }
            return .array(items.map(change))
        }
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}
