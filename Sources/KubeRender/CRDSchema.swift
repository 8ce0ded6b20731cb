import ResourceKit
import TargetSpec

/// The CustomResourceDefinitions of the board kinds: schemas from
/// `CRDSchema+Rules`, names and printer columns from the kind registry.
public enum CRDSchema {
    /// The kinds that get a CRD: the registry's kinds in a kubetarget group (ConfigMap is Kubernetes' own).
    public static let kinds = ["QemuVirtualTarget", "VirtualTargetInstance", "VirtualTargetPool"]

    /// A problem turning the registry into CRDs: a column with no JSONPath.
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func definitions(registry: KindRegistry = .builtIn) throws(Problem) -> [CustomResourceDefinition] {
        var out: [CustomResourceDefinition] = []
        for name in kinds {
            guard let kind = registry.kinds.first(where: { $0.kind == name }) else {
                throw Problem(description: "the kind registry has no \(name)")
            }
            out.append(try definition(kind))
        }
        return out
    }

    /// The openAPIV3Schema of one kind's objects.
    public static func schema(for kind: String) -> JSONSchemaProps? {
        switch kind {
        case "QemuVirtualTarget": return root(spec: targetSpec)
        case "VirtualTargetInstance": return root(spec: instanceSpec)
        case "VirtualTargetPool": return root(spec: poolSpec)
        default: return nil
        }
    }

    static func definition(_ kind: ResourceKind) throws(Problem) -> CustomResourceDefinition {
        var columns: [CustomResourceDefinition.PrinterColumn] = []
        for c in kind.columns {
            guard let column = printerColumns[kind.kind]?[c.header] else {
                throw Problem(description: "\(kind.kind): column \(c.header) has no JSONPath in CRDSchema.printerColumns")
            }
            var col = column
            if c.wide { col.priority = 1 }
            columns.append(col)
        }
        return CustomResourceDefinition(
            metadata: ObjectMetadata(name: "\(kind.plural).\(kind.group)",
                                     labels: [KubeLabels.managedBy: KubeLabels.manager]),
            spec: .init(
                group: kind.group,
                names: .init(kind: kind.kind, listKind: kind.kind + "List", plural: kind.plural, singular: kind.singular,
                             shortNames: kind.shortNames.isEmpty ? nil : kind.shortNames),
                scope: kind.namespaced ? "Namespaced" : "Cluster",
                versions: [.init(name: kind.version, served: true, storage: true,
                                 schema: .init(openAPIV3Schema: schema(for: kind.kind)!),
                                 subresources: .init(), additionalPrinterColumns: columns)]))
    }

    /// Each registry column (by header) as kubectl computes it on a cluster.
    /// The registry's columns are closures over the object; these say the
    /// same in JSONPath, and a test checks every header has one.
    static let printerColumns: [String: [String: CustomResourceDefinition.PrinterColumn]] = [
        "QemuVirtualTarget": [
            "MACHINE": .init(name: "Machine", type: "string", jsonPath: ".spec.qemuConfig.machine"),
            "AGE": .init(name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp"),
        ],
        "VirtualTargetInstance": [
            "READY": .init(name: "Ready", type: "string", jsonPath: ".status.conditions[?(@.type==\"Ready\")].status"),
            "STATUS": .init(name: "Status", type: "string", jsonPath: ".status.phase"),
            "RESTARTS": .init(name: "Restarts", type: "integer", jsonPath: ".status.restarts"),
            "AGE": .init(name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp"),
            "MACHINE": .init(name: "Machine", type: "string", jsonPath: ".status.machine"),
            "TARGET": .init(name: "Target", type: "string", jsonPath: ".spec.targetRef.name"),
            "PID": .init(name: "PID", type: "integer", jsonPath: ".status.pid"),
            "QEMU PID": .init(name: "QEMU PID", type: "integer", jsonPath: ".status.qemuPid"),
            "EXPIRES": .init(name: "Expires", type: "date", jsonPath: ".status.expiresAt"),
            "REASON": .init(name: "Reason", type: "string", jsonPath: ".status.reason"),
            "CLAIMED": .init(name: "Claimed", type: "date", jsonPath: ".status.claimedAt"),
        ],
        "VirtualTargetPool": [
            "TARGET": .init(name: "Target", type: "string", jsonPath: ".spec.targetRef.name"),
            "READY": .init(name: "Ready", type: "integer", jsonPath: ".status.ready"),
            "CLAIMED": .init(name: "Claimed", type: "integer", jsonPath: ".status.claimed"),
            "MEMBERS": .init(name: "Members", type: "integer", jsonPath: ".status.members"),
            "MIN": .init(name: "Min", type: "integer", jsonPath: ".spec.minReady"),
            "MAX": .init(name: "Max", type: "integer", jsonPath: ".spec.maxInstances"),
            "RECYCLE": .init(name: "Recycle", type: "string", jsonPath: ".spec.recycle"),
        ],
    ]
}
