import YAMLTree

/// The storage classes a user configured (`storageclasses.yaml`): Kubernetes
/// `StorageClass` objects whose provisioner is vtarget's local directory one.
/// A claim's, DataVolume's or Viti disk's `storageClassName` picks where its
/// named volume lives, as a cluster's class picks its backing storage.
///
///     apiVersion: storage.k8s.io/v1
///     kind: StorageClass
///     metadata: {name: fast-ssd}
///     provisioner: vtarget.dev/directory
///     parameters: {path: /mnt/ssd/vtarget-volumes}
public enum StorageClassConfig {
    public static let provisioner = "vtarget.dev/directory"

    /// Each class's directory, by name; every problem positioned in `file`.
    public static func decode(_ bytes: [UInt8], file: String) throws(DiagnosticError) -> [String: String] {
        let context = DecodeContext()
        var out: [String: String] = [:]
        let documents: [YAMLDocument]
        do {
            documents = try YAMLParser.parse(bytes, file: file)
        } catch {
            throw DiagnosticError([Diagnostic(.error, at: error.location, field: "", error.message)])
        }
        for doc in documents {
            guard let m = MappingReader(doc.root, path: "", context: context) else { continue }
            defer { m.finish() }
            if let v = m.required("apiVersion"), let s = MappingReader.string(v, "apiVersion", context), s != "storage.k8s.io/v1" {
                context.error(v, "apiVersion", "\"\(s)\" is not valid here; valid: storage.k8s.io/v1")
            }
            if let v = m.required("kind"), let s = MappingReader.string(v, "kind", context), s != "StorageClass" {
                context.error(v, "kind", "\"\(s)\" is not valid here; this file holds StorageClass objects only")
            }
            var name: String?
            if let meta = m.mapping("metadata", required: true) {
                name = meta.string("name", required: true)
                _ = meta.value("labels"); _ = meta.value("annotations")
                meta.finish()
            }
            if let v = m.required("provisioner"), let p = MappingReader.string(v, "provisioner", context), p != provisioner {
                context.error(v, "provisioner", "\"\(p)\" is a cluster's provisioner; valid here: \(provisioner) (a directory of this machine)")
            }
            var path: String?
            if let params = m.mapping("parameters", required: true) {
                path = params.string("path", required: true)
                if let p = path, !p.hasPrefix("/") {
                    context.error(params.value("path"), "parameters.path", "\"\(p)\" must be an absolute directory")
                    path = nil
                }
                params.finish()
            }
            for key in ["reclaimPolicy", "volumeBindingMode", "allowVolumeExpansion", "mountOptions", "allowedTopologies"] { _ = m.value(key) }
            if let name, let path {
                if out[name] != nil {
                    context.error(m.value("metadata"), "metadata.name", "a second StorageClass named \"\(name)\"")
                } else {
                    out[name] = path
                }
            }
        }
        if context.hasErrors { throw DiagnosticError(context.diagnostics) }
        return out
    }
}
