#if canImport(Glibc)
import Glibc
#endif
import InstanceContract
import ControlAPI
import ResourceKit
import HostOS
import TargetRuntime
import VMRuntime
import YAMLTree

/// What `get` lists: the objects of one kind, as node trees with their
/// status, narrowed to a name and a label selector.
struct ObjectListing {
    struct Object {
        var namespace: String
        var name: String
        var node: YAMLNode
    }

    var kind: ResourceKind
    var namespaces: NamespaceOptions
    var name: String?
    var selector: LabelSelector

    func objects(_ client: ControlClient) async throws(ControlError) -> [Object] {
        try await all(client).filter { o in
            (name == nil || o.name == name) && selector.matches(o.node[path: ["metadata", "labels"]]?.stringEntries ?? [:])
        }
    }

    /// Instances and pools have live views with their status; every other kind
    /// is its stored resource, with the creation time kubectl's objects carry.
    private func all(_ client: ControlClient) async throws(ControlError) -> [Object] {
        switch kind.kind {
        case "VirtualTargetInstance":
            let items: [InstanceInfo] = try await client.get("/v1/instances?" + namespaces.query)
            return items.map { Object(namespace: $0.namespace, name: $0.name, node: Table.node($0)) }
        case "VirtualTargetPool":
            let items: [PoolInfo] = try await client.get("/v1/pools?" + namespaces.query)
            return items.map { Object(namespace: $0.namespace, name: $0.name, node: Table.node($0)) }
        default:
            let items: [ResourceInfo] = try await client.get("/v1/resources?kind=\(kind.kind)&" + namespaces.query)
            // A VM's status is its instance's, as KubeVirt's VM shows its VMI's.
            var instances: [String: InstanceInfo] = [:]
            if VMStatus.kinds.contains(kind.kind) {
                let all: [InstanceInfo] = try await client.get("/v1/instances?" + namespaces.query)
                for i in all where i.target == "\(kind.kind)/\(i.name)" { instances[i.namespace + "/" + i.name] = i }
            }
            // A claim's status is its volume file's; a storage class file that cannot be read leaves it out.
            let volumes = VolumeStatus.kinds.contains(kind.kind) ? try? VolumeLocations(environment: Environment.variables) : nil
            let stored = items.compactMap { r -> Object? in
                guard var root = (try? YAMLParser.parse(r.yaml, file: r.name))?.first?.root else { return nil }
                if VMStatus.kinds.contains(kind.kind) {
                    root = root.replacingStatus(VMStatus(kind: kind.kind, instance: instances[r.namespace + "/" + r.name]).node)
                }
                if let volumes {
                    let spec = root[path: ["spec"]]
                    root = root.replacingStatus(VolumeStatus(namespace: r.namespace, name: r.name, spec: spec, locations: volumes).node(kind: kind.kind, spec: spec))
                }
                return Object(namespace: r.namespace, name: r.name,
                              node: root.addingToMetadata("creationTimestamp", Table.str(Table.timestamp(r.createdAt))))
            }
            return kind.kind == "VirtualMachineInstance" ? stored + (try await instancesOfVMs(client)) : stored
        }
    }

    /// A running VirtualMachine's instance is a VMI of the VM's name, as
    /// KubeVirt lists it: the template's spec and labels, owned by the VM.
    private func instancesOfVMs(_ client: ControlClient) async throws(ControlError) -> [Object] {
        let vms: [ResourceInfo] = try await client.get("/v1/resources?kind=VirtualMachine&" + namespaces.query)
        let running: [InstanceInfo] = try await client.get("/v1/instances?" + namespaces.query)
        return vms.compactMap { vm in
            guard let i = running.first(where: { $0.namespace == vm.namespace && $0.target == "VirtualMachine/\(vm.name)" && $0.name == vm.name }),
                  let root = (try? YAMLParser.parse(vm.yaml, file: vm.name))?.first?.root else { return nil }
            let template = root[path: ["spec", "template"]]
            let metadata = Table.map([("name", Table.str(vm.name)), ("namespace", Table.str(vm.namespace)),
                                      ("labels", template?[path: ["metadata", "labels"]]),
                                      ("creationTimestamp", Table.time(i.startedAt ?? i.createdAt)),
                                      ("ownerReferences", Table.seq([Table.map([("apiVersion", Table.str("kubevirt.io/v1")),
                                                                                ("kind", Table.str("VirtualMachine")), ("name", Table.str(vm.name))])]))])
            let node = Table.map(Table.typeMeta("VirtualMachineInstance") + [("metadata", metadata), ("spec", template?[path: ["spec"]]),
                                                                              ("status", VMStatus(kind: "VirtualMachineInstance", instance: i).node)])
            return Object(namespace: vm.namespace, name: vm.name, node: node)
        }
    }

    /// kubectl's NAMESPACE column: with -A, for kinds that live in one.
    private var namespaceColumn: Bool { namespaces.allNamespaces && kind.namespaced }

    func header(wide: Bool) -> [String] {
        (namespaceColumn ? ["NAMESPACE"] : []) + ["NAME"] + kind.headers(wide: wide)
    }

    func row(_ o: Object, wide: Bool) -> [String] {
        (namespaceColumn ? [o.namespace] : []) + [o.name] + kind.cells(o.node, now: ShimStatus.now, wide: wide)
    }
}

extension YAMLNode {
    /// The object with `metadata.key` set, unless it has one already.
    func addingToMetadata(_ key: String, _ value: YAMLNode) -> YAMLNode {
        guard case .mapping(var pairs) = content, let i = pairs.firstIndex(where: { $0.key.scalar == "metadata" }),
              case .mapping(var meta) = pairs[i].value.content, !meta.contains(where: { $0.key.scalar == key }) else { return self }
        meta.append(YAMLPair(key: Table.str(key), value: value))
        pairs[i].value.content = .mapping(meta)
        var copy = self
        copy.content = .mapping(pairs)
        return copy
    }
}

/// A VM's status from its instance, in KubeVirt's words (the VM's
/// `printableStatus` and `ready`, the VMI's `phase`) and Viti's (`phase`).
struct VMStatus {
    static let kinds: Set<String> = ["VirtualMachine", "VirtualMachineInstance", "Machine"]

    var printableStatus: String
    var ready: Bool
    var phase: String
    var paused = false
    var agent: GuestAgentInfo?

    init(kind: String, instance: InstanceInfo?) {
        guard let i = instance else {
            // No instance: stopped (Halted, Manual before start), as KubeVirt says.
            (printableStatus, ready, phase) = ("Stopped", false, kind == "Machine" ? "Stopped" : "")
            return
        }
        paused = i.conditions.contains { $0.type == "Paused" && $0.status == "True" }
        switch i.phase {
        case "Running": printableStatus = paused ? "Paused" : "Running"; phase = "Running"
        case "Pending", "Starting": printableStatus = "Starting"; phase = i.phase == "Pending" ? "Pending" : "Scheduled"
        case "Stopping": printableStatus = "Stopping"; phase = "Running"
        case "Succeeded": printableStatus = "Stopped"; phase = "Succeeded"
        case "Failed": printableStatus = i.nextRestartAt != nil ? "CrashLoopBackOff" : "Stopped"; phase = "Failed"
        default: printableStatus = i.phase; phase = i.phase
        }
        ready = i.ready && i.phase == "Running"
        agent = i.phase == "Running" ? i.guestAgent : nil
    }

    /// The node a VMI runs on: this machine.
    static let nodeName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        return gethostname(&buffer, buffer.count) == 0 ? String(cString: buffer) : "localhost"
    }()

    /// KubeVirt's conditions (Ready, Paused, AgentConnected), its
    /// `status.interfaces` (name, interfaceName, mac, ipAddress, ipAddresses),
    /// `nodeName` and `guestOSInfo`; Viti's `ipAddresses`.
    var node: YAMLNode {
        func condition(_ type: String, _ on: Bool, _ reason: String? = nil) -> YAMLNode {
            Table.map([("type", Table.str(type)), ("status", Table.str(on ? "True" : "False")), ("reason", reason.map(Table.str))])
        }
        var conditions = [condition("Ready", ready)]
        if paused { conditions.append(condition("Paused", true, "PausedByUser")) }
        if let agent, agent.connected { conditions.append(condition("AgentConnected", true)) }
        let interfaces = (agent?.interfaces ?? []).map { i in
            Table.map([("interfaceName", Table.str(i.name)), ("mac", i.mac.map(Table.str)),
                       ("ipAddress", i.ipAddresses.first.map(Table.str)), ("ipAddresses", Table.seq(i.ipAddresses.map(Table.str)))])
        }
        let ips = (agent?.interfaces ?? []).flatMap(\.ipAddresses)
        return Table.map([("printableStatus", Table.str(printableStatus)), ("ready", Table.plain(ready ? "True" : "False")),
                          ("phase", phase.isEmpty ? nil : Table.str(phase)),
                          ("nodeName", phase == "Running" ? Table.str(Self.nodeName) : nil),
                          ("conditions", Table.seq(conditions)),
                          ("interfaces", interfaces.isEmpty ? nil : Table.seq(interfaces)),
                          ("ipAddresses", ips.isEmpty ? nil : Table.seq(ips.map(Table.str))),
                          ("guestOSInfo", agent?.osName.map { Table.map([("prettyName", Table.str($0))]) })])
    }
}

extension YAMLNode {
    /// The object with its `status` replaced (the stored one is the user's, not ours).
    func replacingStatus(_ status: YAMLNode) -> YAMLNode {
        guard case .mapping(var pairs) = content else { return self }
        pairs.removeAll { $0.key.scalar == "status" }
        pairs.append(YAMLPair(key: Table.str("status"), value: status))
        var copy = self
        copy.content = .mapping(pairs)
        return copy
    }
}
