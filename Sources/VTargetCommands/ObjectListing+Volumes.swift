import DiskImages
import MachineCatalog
import ResourceKit
import TargetRuntime
import VMRuntime
import YAMLTree

/// A claim's or DataVolume's status as Kubernetes and CDI show it, from
/// its volume file: a volume is made at the first start of a VM that uses
/// it (a cluster's WaitForFirstConsumer), so until then a claim is Pending
/// and a DataVolume WaitForFirstConsumer; after, Bound (Succeeded) with
/// the file's size as its capacity, which a larger request later grows.
struct VolumeStatus {
    static let kinds: Set<String> = ["PersistentVolumeClaim", "DataVolume"]

    /// The size of the claim's volume file, when there is one.
    var bytes: UInt64?

    init(namespace: String, name: String, spec: YAMLNode?, locations: VolumeLocations) {
        let path = locations.path(name, namespace: namespace, storageClass: VolumeLocations.storageClass(ofClaimSpec: spec))
        bytes = QCOW2Header.virtualSize(ofFile: path)
    }

    func node(kind: String, spec: YAMLNode?) -> YAMLNode {
        let made = bytes != nil
        if kind == "DataVolume" {
            return Table.map([("phase", Table.str(made ? "Succeeded" : "WaitForFirstConsumer")),
                              ("progress", Table.str(made ? "100.0%" : "N/A"))])
        }
        return Table.map([("phase", Table.str(made ? "Bound" : "Pending")),
                          ("accessModes", made ? spec?[path: ["accessModes"]] ?? Table.seq([Table.str("ReadWriteOnce")]) : nil),
                          ("capacity", bytes.map { Table.map([("storage", Table.str(Quantity.format($0)))]) })])
    }
}
