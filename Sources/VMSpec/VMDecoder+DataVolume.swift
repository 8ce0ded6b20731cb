import ResourceKit
import YAMLTree

/// One `dataVolumeTemplates` entry: the DataVolume CDI would make for the VM,
/// here a named local volume made at the VM's first start.
struct DataVolumeTemplate {
    var name: String
    var capacityBytes: UInt64?
    var storageClass: String?
    var content: VolumeContent
    var node: YAMLNode
    var path: String
    /// Its place in the list, for messages in the order written.
    var index: Int
}

/// A `PersistentVolumeClaim` or CDI `DataVolume` of its own (not a VM's
/// template): the named local volume of that name in its namespace, which a
/// VM's `persistentVolumeClaim` or `dataVolume` volume uses.
public struct VolumeClaim: Sendable {
    /// `PersistentVolumeClaim` or `DataVolume`.
    public var kind: String
    public var metadata: ObjectMeta
    public var capacityBytes: UInt64?
    public var storageClass: String?
    public var content: VolumeContent?
}

extension VMDecoder {
    /// A DataVolume object: its spec as a template's.
    public func decodeDataVolume(_ meta: ObjectMeta, _ spec: MappingReader) -> VolumeClaim? {
        defer { spec.finish() }
        guard let (capacity, storageClass, content) = decodeDataVolumeSpec(spec, name: meta.name) else { return nil }
        return VolumeClaim(kind: "DataVolume", metadata: meta, capacityBytes: capacity, storageClass: storageClass, content: content)
    }

    /// A PersistentVolumeClaim: its size (required), class, and a
    /// `dataSource` naming another claim (a clone), as Kubernetes' CSI clone.
    public func decodePersistentVolumeClaim(_ meta: ObjectMeta, _ spec: MappingReader) -> VolumeClaim? {
        defer { spec.finish() }
        let context = spec.context
        _ = spec.value("accessModes")
        if let v = spec.value("volumeMode"), let mode = MappingReader.string(v, spec.child("volumeMode"), context), mode != "Filesystem" && mode != "Block" {
            context.error(v, spec.child("volumeMode"), "\"\(mode)\" is not valid; valid: \"Filesystem\", \"Block\"")
        }
        let storageClass = spec.string("storageClassName")
        refuse(spec, ["selector", "volumeName", "volumeAttributesClassName"], .cluster("it binds the claim to the cluster's storage"))
        var capacity: UInt64?
        if let r = spec.mapping("resources", required: true) {
            if let q = r.mapping("requests", required: true) {
                capacity = locatedBytes(q, "storage")?.value
                if q.value("storage") == nil { context.error(q.node, q.child("storage"), "a claim needs its size: give resources.requests.storage (e.g. 10Gi)") }
                for (k, v) in q.allPairs() where k != "storage" { context.error(v, q.child(k), "a volume's request is its size; valid: storage") }
                q.finish()
            }
            _ = r.value("limits")
            r.finish()
        }
        var content: VolumeContent?
        let sources = ["dataSource", "dataSourceRef"].filter { spec.has($0) }
        if sources.count > 1 { for k in sources { _ = spec.value(k) }; context.error(spec.node, spec.child(sources[1]), "give dataSource or dataSourceRef, not both") }
        if let key = sources.first, let d = spec.mapping(key) {
            defer { d.finish() }
            let kind = d.string("kind", required: true), name = d.string("name", required: true)
            let group = d.string("apiGroup")
            _ = d.value("namespace")
            if let kind, kind != "PersistentVolumeClaim" || (group ?? "").isEmpty == false {
                context.error(d.value("kind"), d.child("kind"), "a \(kind) data source needs a cluster (a snapshot or populator); valid here: PersistentVolumeClaim (a clone)")
            } else if let name {
                if name == meta.name { context.error(d.value("name"), d.child("name"), "a claim cannot be cloned from itself") }
                content = .clone(namespace: nil, name: name)
            }
        }
        return VolumeClaim(kind: "PersistentVolumeClaim", metadata: meta, capacityBytes: capacity, storageClass: storageClass, content: content)
    }

    /// CDI's sources that need a cluster's importer or a service outside this machine.
    static let clusterSources = ["upload", "imageio", "vddk", "s3", "gcs", "snapshot"]
    static let dataVolumeSources = ["blank", "registry", "pvc", "http"] + clusterSources

    /// `spec.dataVolumeTemplates` of a VirtualMachine, by name, with every
    /// field CDI reads checked; fields only a cluster can honour are refused.
    func decodeDataVolumeTemplates(_ spec: MappingReader) -> [String: DataVolumeTemplate] {
        let context = spec.context
        var out: [String: DataVolumeTemplate] = [:]
        for (index, (node, path)) in (spec.sequence("dataVolumeTemplates") ?? []).enumerated() {
            guard let m = MappingReader(node, path: path, context: context) else { continue }
            defer { m.finish() }
            _ = m.value("apiVersion"); _ = m.value("kind"); _ = m.value("status")
            var name: String?
            if let meta = m.mapping("metadata", required: true) {
                name = self.name(meta)
                _ = meta.value("labels"); _ = meta.value("annotations"); _ = meta.value("creationTimestamp")
                if let ns = meta.value("namespace") {
                    context.error(ns, meta.child("namespace"), "a DataVolume template is made in its VM's namespace; remove namespace")
                }
                meta.finish()
            }
            guard let s = m.mapping("spec", required: true) else { continue }
            defer { s.finish() }
            guard let template = decodeDataVolumeSpec(s, name: name) else { continue }
            if let name {
                if let first = out[name] {
                    context.error(node, path + ".metadata.name", "a second DataVolume template named \"\(name)\" (the first is at \(first.node.location))")
                } else {
                    out[name] = DataVolumeTemplate(name: name, capacityBytes: template.0, storageClass: template.1, content: template.2,
                                                   node: node, path: path, index: index)
                }
            }
        }
        return out
    }

    /// A DataVolume's `spec`: its size and class (`pvc` or `storage`) and its content (`source`).
    func decodeDataVolumeSpec(_ s: MappingReader, name: String?) -> (UInt64?, String?, VolumeContent)? {
        let context = s.context
        refuse(s, ["sourceRef"], .cluster("a DataSource is the cluster's catalog of boot images; give source.registry with an image in the local store"))
        refuse(s, ["checkpoints", "finalCheckpoint"], .cluster("warm migration imports from a running VMware VM"))
        refuse(s, ["priorityClassName"], .cluster("it schedules the importer pod"))
        _ = s.value("preallocation")
        if let v = s.value("contentType"), let t = MappingReader.string(v, s.child("contentType"), context), t != "kubevirt" {
            context.error(v, s.child("contentType"), "\"\(t)\" is not supported here; valid: \"kubevirt\" (a disk image)")
        }
        // The claim: `pvc` (a PersistentVolumeClaim's spec) or `storage` (CDI's, which may infer the size).
        let claims = ["pvc", "storage"].filter { s.has($0) }
        var capacity: UInt64?, storageClass: String?
        if claims.count != 1 {
            for k in claims { _ = s.value(k) }
            context.error(s.node, s.path, claims.isEmpty ? "a DataVolume needs pvc or storage (its size and class)" : "give pvc or storage, not both")
        } else if let c = s.mapping(claims[0]) {
            defer { c.finish() }
            _ = c.value("accessModes")
            if let v = c.value("volumeMode"), let mode = MappingReader.string(v, c.child("volumeMode"), context), mode != "Filesystem" && mode != "Block" {
                context.error(v, c.child("volumeMode"), "\"\(mode)\" is not valid; valid: \"Filesystem\", \"Block\"")
            }
            storageClass = c.string("storageClassName")
            refuse(c, ["dataSource", "dataSourceRef", "selector", "volumeName"], .cluster("it binds the claim to the cluster's storage"))
            if let r = c.mapping("resources") {
                if let q = r.mapping("requests") {
                    capacity = locatedBytes(q, "storage")?.value
                    for (k, v) in q.allPairs() where k != "storage" {
                        context.error(v, q.child(k), "a volume's request is its size; valid: storage")
                    }
                    q.finish()
                }
                _ = r.value("limits")
                r.finish()
            }
            if claims[0] == "pvc" && capacity == nil {
                context.error(c.node, c.child("resources.requests.storage"), "a pvc claim needs its size (resources.requests.storage); storage may leave it out for a registry or pvc source")
            }
        }
        // The content.
        guard let source = s.mapping("source") else {
            if !s.has("sourceRef") { context.error(s.node, s.child("source"), "a DataVolume needs a source; valid here: blank, registry, http, pvc") }
            return nil
        }
        defer { source.finish() }
        let present = Self.dataVolumeSources.filter { source.has($0) }
        guard present.count == 1, let kind = present.first else {
            for k in present { _ = source.value(k) }
            context.error(source.node, source.path, present.isEmpty
                ? "a DataVolume source needs one kind; valid here: blank, registry, http, pvc"
                : "a DataVolume source has one kind, not " + present.joined(separator: " and "))
            return nil
        }
        if Self.clusterSources.contains(kind) {
            refuse(source, [kind], .cluster("CDI's \(kind) importer"))
            return nil
        }
        guard let src = source.mapping(kind) else {
            context.error(source.value(kind), source.child(kind), "expected a mapping")
            return nil
        }
        defer { src.finish() }
        switch kind {
        case "blank":
            guard capacity != nil else {
                context.error(src.node, src.path, "a blank DataVolume needs its size: give resources.requests.storage")
                return nil
            }
            return (capacity, storageClass, .blank)
        case "registry":
            refuse(src, ["secretRef", "certConfigMap"], .cluster("they are Kubernetes Secrets and ConfigMaps of the importer; `vtarget image pull` reaches the registry"))
            refuse(src, ["imageStream"], .cluster("an OpenShift image stream"))
            refuse(src, ["platform"], .notYet("pick the architecture at `vtarget image pull --arch`"))
            if let v = src.value("pullMethod"), let method = MappingReader.string(v, src.child("pullMethod"), context), method != "pod" && method != "node" {
                context.error(v, src.child("pullMethod"), "\"\(method)\" is not valid; valid: \"pod\", \"node\"")
            }
            guard let v = src.required("url"), let url = MappingReader.string(v, src.child("url"), context) else { return nil }
            guard url.hasPrefix("docker://"), url.count > "docker://".count else {
                context.error(v, src.child("url"), "\"\(url)\" is not a registry image; give docker://HOST/REPO[:TAG|@sha256:...] (an image in the local store)")
                return nil
            }
            return (capacity, storageClass, .image(reference: String(url.dropFirst("docker://".count))))
        case "http":
            refuse(src, ["secretRef", "certConfigMap", "secretExtraHeaders"], .cluster("they are Kubernetes Secrets and ConfigMaps of the importer"))
            refuse(src, ["extraHeaders"], .notYet("request headers for the download"))
            guard let v = src.required("url"), let url = MappingReader.string(v, src.child("url"), context) else { return nil }
            guard let scheme = url.firstRange(of: "://").map({ url[..<$0.lowerBound] }), scheme == "http" || scheme == "https",
                  url.count > scheme.count + 3 else {
                context.error(v, src.child("url"), "\"\(url)\" is not an http:// or https:// URL of a qcow2 or raw disk")
                return nil
            }
            return (capacity, storageClass, .http(url: url))
        default:  // pvc
            let claim = src.string("name", required: true)
            let namespace = src.string("namespace")
            if let claim, !Names.isDNSLabel(claim) { context.error(src.value("name"), src.child("name"), "\"\(claim)\" is not a valid name (a DNS-1123 label)") }
            if let namespace, !Names.isDNSLabel(namespace) { context.error(src.value("namespace"), src.child("namespace"), "\"\(namespace)\" is not a valid namespace (a DNS-1123 label)") }
            if let claim, claim == name, namespace == nil {
                context.error(src.value("name"), src.child("name"), "a DataVolume cannot be cloned from itself")
            }
            return claim.map { (capacity, storageClass, .clone(namespace: namespace, name: $0)) }
        }
    }

    /// The VM's `persistentVolumeClaim` and `dataVolume` volumes that name a
    /// template take its size, class and content (CDI makes a claim of the
    /// DataVolume's name). A template no volume names is made by KubeVirt
    /// all the same; here nothing would ever make it, which is said.
    func join(_ templates: [String: DataVolumeTemplate], into instance: inout VMInstanceSpec, _ context: DecodeContext) {
        var used = Set<String>()
        for i in instance.volumes.indices {
            guard case .volume(let name, nil, nil, nil) = instance.volumes[i].source, let t = templates[name] else { continue }
            instance.volumes[i].source = .volume(name: name, capacityBytes: t.capacityBytes, storageClass: t.storageClass, content: t.content)
            instance.volumes[i].owner = .dataVolumeTemplate
            used.insert(name)
        }
        for t in templates.values.sorted(by: { $0.index < $1.index }) where !used.contains(t.name) {
            context.warning(t.node, t.path + ".metadata.name",
                            "no volume of the VM names DataVolume \"\(t.name)\", so it is never made here; add one (dataVolume: {name: \(t.name)}) or remove the template")
        }
    }
}
