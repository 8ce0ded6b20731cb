#if canImport(Glibc)
import Glibc
#endif

/// Where named volumes live: `<state>/volumes/<ns>/<name>.qcow2`, or under
/// the directory the user configured for the claim's storage class. One
/// place for the rule, read by a VM's start (`VMPreparation`) and by
/// `get pvc|dv` (a claim is Bound once its file is there).
public struct VolumeLocations: Sendable, Equatable {
    /// `<state>/volumes`.
    public var root: String
    /// The user's storage classes (`StorageClassConfig`): class name to directory.
    public var classDirectories: [String: String]

    public init(root: String, classDirectories: [String: String] = [:]) {
        self.root = root
        self.classDirectories = classDirectories
    }

    /// A claim's directory: its storage class's when the user configured
    /// that class, else `root` (a cluster would leave such a claim Pending;
    /// here the seeds' class names, `standard` or `fast-ssd`, work with no
    /// configuration).
    public func directory(namespace: String, storageClass: String?) -> String {
        if let storageClass, let dir = classDirectories[storageClass] { return dir + "/" + namespace }
        return root + "/" + namespace
    }

    public func path(_ name: String, namespace: String, storageClass: String?) -> String {
        directory(namespace: namespace, storageClass: storageClass) + "/" + name + ".qcow2"
    }

    /// Where volume `name` of `namespace` already is, in the default
    /// directory or any configured class's, if anywhere.
    public func existing(_ name: String, namespace: String) -> String? {
        let classes = [nil] + classDirectories.keys.sorted().map { Optional($0) }
        return classes.lazy.map { path(name, namespace: namespace, storageClass: $0) }.first { access($0, R_OK) == 0 }
    }
}
