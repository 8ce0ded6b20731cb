import YAMLTree

extension KindRegistry {
    /// The kinds of the contract that this version runs.
    public static let builtIn = KindRegistry([
        ResourceKind(
            group: "qemu.kubetarget.dev", version: "v1alpha1", kind: "QemuVirtualTarget",
            plural: "qemuvirtualtargets", singular: "qemuvirtualtarget", shortNames: ["qvt"], aliases: ["target", "targets"],
            columns: [.field("MACHINE", "spec", "qemuConfig", "machine", missing: ""), .age(["metadata", "creationTimestamp"])],
            deleteRank: 1),
        ResourceKind(
            group: "kubetarget.dev", version: "v1alpha1", kind: "VirtualTargetInstance",
            plural: "virtualtargetinstances", singular: "virtualtargetinstance", shortNames: ["vti"],
            aliases: ["inst", "instance", "instances"],
            columns: [
                Column("READY", source: .status) { node, _ in
                    let ready = node[path: ["status", "conditions"]].flatMap { c -> Bool? in
                        guard case .sequence(let items) = c.content else { return nil }
                        return items.contains { $0["type"]?.scalar == "Ready" && $0["status"]?.scalar == "True" }
                    } ?? false
                    return ready ? "1/1" : "0/1"
                },
                // A restart waiting out its back-off shows as kubectl shows a crash loop;
                // an instance stopped on request shows its reason, as kubectl shows a
                // completed pod's ("Stopped", not the phase "Succeeded" it ended in).
                Column("STATUS", source: .status) { node, _ in
                    if node[path: ["status", "nextRestartAt"]] != nil { return "BackOff" }
                    // A paused guest: phase Running with a Paused condition, shown as KubeVirt's printableStatus does.
                    if case .sequence(let cs)? = node[path: ["status", "conditions"]]?.content,
                       cs.contains(where: { $0["type"]?.scalar == "Paused" && $0["status"]?.scalar == "True" }) { return "Paused" }
                    let phase = node[path: ["status", "phase"]]?.scalar ?? "Pending"
                    if phase == "Succeeded" || phase == "Failed", let reason = node[path: ["status", "reason"]]?.scalar, reason == "Stopped" {
                        return reason
                    }
                    return phase
                },
                .field("RESTARTS", "status", "restarts", missing: "0"),
                // The object's age, as kubectl's AGE: a start or restart does not reset it
                // (RESTARTS counts those; startedAt is in -o yaml and describe).
                .age(["metadata", "creationTimestamp"], ["status", "startedAt"]),
                .field("MACHINE", "status", "machine", wide: true),
                .field("TARGET", "spec", "targetRef", "name", wide: true),
                .field("PID", "status", "pid", wide: true),
                .field("QEMU PID", "status", "qemuPid", wide: true),
                .until("EXPIRES", "status", "expiresAt", wide: true),
                .field("REASON", "status", "reason", wide: true),
                // A pool member handed out by a claim: when, so a leaked claim stands out.
                Column("CLAIMED", wide: true, source: .clock) { node, now in
                    node[path: ["status", "claimedAt"]]?.scalar.flatMap(Timestamp.parse).map { Timestamp.duration(now - $0) + " ago" } ?? "-"
                },
            ],
            deleteRank: 0),
        ResourceKind(
            group: "kubetarget.dev", version: "v1alpha1", kind: "VirtualTargetPool",
            plural: "virtualtargetpools", singular: "virtualtargetpool", shortNames: ["vtp"], aliases: ["pool", "pools"],
            columns: [
                .field("TARGET", "spec", "targetRef", "name"),
                .field("READY", "status", "ready", missing: "0"),
                .field("CLAIMED", "status", "claimed", missing: "0"),
                .field("MEMBERS", "status", "members", missing: "0"),
                .field("MIN", "spec", "minReady"),
                .field("MAX", "spec", "maxInstances"),
                .field("RECYCLE", "spec", "recycle"),
            ],
            deleteRank: 0),
        ResourceKind(
            group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", singular: "configmap", shortNames: ["cm"],
            columns: [
                Column("DATA") { node, _ in String((node["data"]?.count ?? 0) + (node["binaryData"]?.count ?? 0)) },
                .age(["metadata", "creationTimestamp"]),
            ],
            deleteRank: 2),
        ResourceKind(
            group: "", version: "v1", kind: "Secret", plural: "secrets", singular: "secret", shortNames: [],
            columns: [
                .field("TYPE", "type", missing: "Opaque"),
                Column("DATA") { node, _ in String((node["data"]?.count ?? 0) + (node["stringData"]?.count ?? 0)) },
                .age(["metadata", "creationTimestamp"]),
            ],
            deleteRank: 2),
        // Named volumes: Kubernetes' claim and CDI's DataVolume, each a qcow2 in the state directory.
        ResourceKind(
            group: "", version: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", singular: "persistentvolumeclaim",
            shortNames: ["pvc"],
            columns: [
                // As kubectl: the volume's size once it is made (Bound), the request beside it in -o wide.
                .field("STATUS", "status", "phase", missing: ""),
                .field("CAPACITY", "status", "capacity", "storage", missing: ""),
                .field("REQUEST", "spec", "resources", "requests", "storage", wide: true, missing: ""),
                .accessModes,
                .field("STORAGECLASS", "spec", "storageClassName", missing: ""),
                .age(["metadata", "creationTimestamp"]),
            ],
            deleteRank: 2),
        ResourceKind(
            group: "cdi.kubevirt.io", version: "v1beta1", kind: "DataVolume", plural: "datavolumes", singular: "datavolume",
            shortNames: ["dv", "dvs"],
            columns: [
                .field("PHASE", "status", "phase", missing: ""),
                .field("PROGRESS", "status", "progress", missing: ""),
                Column("SOURCE") { node, _ in
                    guard case .mapping(let pairs)? = node[path: ["spec", "source"]]?.content, let first = pairs.first else { return "-" }
                    return first.key.scalar ?? "-"
                },
                Column("CAPACITY") { node, _ in
                    (node[path: ["spec", "storage", "resources", "requests", "storage"]] ?? node[path: ["spec", "pvc", "resources", "requests", "storage"]])?.scalar ?? "-"
                },
                .age(["metadata", "creationTimestamp"]),
            ],
            deleteRank: 2),
        // KubeVirt's kinds, spelled as its CRDs spell them (short names included).
        ResourceKind(
            group: "kubevirt.io", version: "v1", kind: "VirtualMachine",
            plural: "virtualmachines", singular: "virtualmachine", shortNames: ["vm", "vms"],
            columns: [
                .age(["metadata", "creationTimestamp"]),
                .field("STATUS", "status", "printableStatus", missing: ""),
                .field("READY", "status", "ready", missing: "False"),
                .field("RUNSTRATEGY", "spec", "runStrategy", wide: true, missing: ""),
                .field("INSTANCETYPE", "spec", "instancetype", "name", wide: true, missing: ""),
                Column.firstIP(wide: true),
                .field("NODENAME", "status", "nodeName", wide: true, missing: ""),
            ],
            deleteRank: 0),
        ResourceKind(
            group: "kubevirt.io", version: "v1", kind: "VirtualMachineInstance",
            plural: "virtualmachineinstances", singular: "virtualmachineinstance", shortNames: ["vmi", "vmis"],
            columns: [
                .age(["metadata", "creationTimestamp"]),
                .field("PHASE", "status", "phase", missing: ""),
                // From the guest agent (status.interfaces), as KubeVirt's columns.
                Column.firstIP(wide: false),
                .field("NODENAME", "status", "nodeName", missing: ""),
                Column("READY", source: .status) { node, _ in
                    let ready = node[path: ["status", "conditions"]].flatMap { c -> Bool? in
                        guard case .sequence(let items) = c.content else { return nil }
                        return items.contains { $0["type"]?.scalar == "Ready" && $0["status"]?.scalar == "True" }
                    } ?? false
                    return ready ? "True" : "False"
                },
            ],
            deleteRank: 0),
        ResourceKind(
            group: "instancetype.kubevirt.io", version: "v1beta1", kind: "VirtualMachineInstancetype",
            plural: "virtualmachineinstancetypes", singular: "virtualmachineinstancetype",
            shortNames: ["vminstancetype", "vminstancetypes", "vmf", "vmfs"],
            columns: [.age(["metadata", "creationTimestamp"])], deleteRank: 1),
        ResourceKind(
            group: "instancetype.kubevirt.io", version: "v1beta1", kind: "VirtualMachineClusterInstancetype",
            plural: "virtualmachineclusterinstancetypes", singular: "virtualmachineclusterinstancetype",
            shortNames: ["vmclusterinstancetype", "vmclusterinstancetypes", "vmcf", "vmcfs"], namespaced: false,
            columns: [.age(["metadata", "creationTimestamp"])], deleteRank: 1),
        ResourceKind(
            group: "instancetype.kubevirt.io", version: "v1beta1", kind: "VirtualMachinePreference",
            plural: "virtualmachinepreferences", singular: "virtualmachinepreference", shortNames: ["vmpref", "vmprefs", "vmp", "vmps"],
            columns: [.age(["metadata", "creationTimestamp"])], deleteRank: 1),
        ResourceKind(
            group: "instancetype.kubevirt.io", version: "v1beta1", kind: "VirtualMachineClusterPreference",
            plural: "virtualmachineclusterpreferences", singular: "virtualmachineclusterpreference", shortNames: ["vmcp", "vmcps"],
            namespaced: false, columns: [.age(["metadata", "creationTimestamp"])], deleteRank: 1),
        // Viti's kinds: `machines` means these, as kubectl with Viti's CRDs would;
        // board profiles are `vtarget machines` and `get machineprofiles`.
        ResourceKind(
            group: "vitistack.io", version: "v1alpha1", kind: "Machine", plural: "machines", singular: "machine",
            columns: [
                .field("PHASE", "status", "phase", missing: ""),
                Column("CLASS") { node, _ in
                    node[path: ["spec", "machineClass"]]?.scalar ?? node[path: ["spec", "instanceType"]]?.scalar ?? "small"
                },
                .age(["metadata", "creationTimestamp"]),
            ],
            deleteRank: 0),
        ResourceKind(
            group: "vitistack.io", version: "v1alpha1", kind: "MachineClass", plural: "machineclasses", singular: "machineclass",
            shortNames: ["mc"], namespaced: false,
            columns: [
                .field("CORES", "spec", "cpu", "cores"),
                .field("MEMORY", "spec", "memory", "quantity"),
                .age(["metadata", "creationTimestamp"]),
            ],
            deleteRank: 1),
    ])
}

extension Column {
    /// kubectl's ACCESS MODES: a bound claim's modes, abbreviated (RWO, ROX, RWX, RWOP).
    static let accessModes = Column("ACCESS MODES", source: .status) { node, _ in
        guard case .sequence(let modes)? = node[path: ["status", "accessModes"]]?.content else { return "" }
        let short = ["ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"]
        return modes.compactMap { $0.scalar.map { short[$0] ?? $0 } }.joined(separator: ",")
    }

    /// A VM's first guest address (`status.ipAddresses`, from its guest agent).
    static func firstIP(wide: Bool) -> Column {
        Column("IP", wide: wide, source: .status) { node, _ in
            guard case .sequence(let items)? = node[path: ["status", "ipAddresses"]]?.content else { return "" }
            return items.first?.scalar ?? ""
        }
    }
}
