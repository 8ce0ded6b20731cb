#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MachineCatalog
import ResourceKit
import YAMLTree

/// What the user allowed on the command line that changes what a VM may name.
public struct VMDecodeOptions: Sendable {
    /// `--allow-host-paths`: a `hostDisk` reads and writes a file of this host.
    public var allowHostPaths: Bool

    public init(allowHostPaths: Bool = false) { self.allowHostPaths = allowHostPaths }
}

/// The VM kinds' `spec`s → `VMResources` values, strictly: unknown fields
/// are errors with a suggestion, and KubeVirt fields that only a cluster (or
/// a later vtarget) can honour are refused by name with the reason, warnings
/// under `--lenient` (strictness is the `DecodeContext`'s).
public struct VMDecoder {
    let options: VMDecodeOptions

    public init(options: VMDecodeOptions = VMDecodeOptions()) { self.options = options }

    /// Why a field is refused, said once per family.
    enum Refusal {
        case cluster(String)
        case notYet(String)

        var text: String {
            switch self {
            case .cluster(let why): return "needs a cluster (\(why)); vtarget runs the VM on this machine alone"
            case .notYet(let why): return "is not supported by vtarget (\(why))"
            }
        }
    }

    static let scheduling = Refusal.cluster("it places or schedules the pod on a node")

    /// Refuses each present key: an error, or a warning with `--lenient`.
    func refuse(_ m: MappingReader, _ keys: [String], _ refusal: Refusal) {
        for key in keys {
            guard let v = m.value(key) else { continue }
            let message = "\"\(key)\" \(refusal.text); remove it" + (m.context.strict ? " (or decode with --lenient to ignore it)" : "")
            if m.context.strict {
                m.context.error(v, m.child(key), message)
            } else {
                m.context.warning(v, m.child(key), message)
            }
        }
    }

    // MARK: Scalars

    /// A byte quantity: `DecodeContext.bytes`, read alike for every kind.
    func bytes(_ v: YAMLNode, _ path: String, _ context: DecodeContext) -> UInt64? { context.bytes(v, path) }

    func locatedBytes(_ m: MappingReader, _ key: String) -> Located<UInt64>? {
        guard let v = m.value(key), let b = bytes(v, m.child(key), m.context) else { return nil }
        return Located(b, at: v.location, path: m.child(key))
    }

    func locatedInt(_ m: MappingReader, _ key: String, in range: ClosedRange<Int>) -> Located<Int>? {
        guard let v = m.value(key), let n = MappingReader.int(v, m.child(key), m.context, in: range) else { return nil }
        return Located(n, at: v.location, path: m.child(key))
    }

    /// A name that becomes a QEMU id or a file name: a DNS-1123 label.
    func name(_ m: MappingReader, _ key: String = "name") -> String? {
        guard let v = m.required(key), let s = MappingReader.string(v, m.child(key), m.context) else { return nil }
        guard Names.isDNSLabel(s) else {
            m.context.error(v, m.child(key), "\"\(s)\" is not a valid name: use at most 63 characters of lower-case letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label)")
            return nil
        }
        return s
    }

    /// An empty mapping written as `{}` (`masquerade: {}`, `rng: {}`), the
    /// KubeVirt way of switching something on; keys inside are refused.
    func presence(_ m: MappingReader, _ key: String) -> Bool {
        guard let v = m.value(key) else { return m.has(key) }
        if let inner = MappingReader(v, path: m.child(key), context: m.context) { inner.finish() }
        return true
    }

    // MARK: VirtualMachine

    public func decodeVirtualMachine(_ meta: ObjectMeta, _ spec: MappingReader) -> KubeVirtVirtualMachine? {
        defer { spec.finish() }
        let context = spec.context
        var strategy: RunStrategy = .Halted
        let runningNode = spec.value("running")
        let running = spec.bool("running")
        if let v = spec.value("runStrategy") {
            if runningNode != nil {
                context.error(v, spec.child("runStrategy"), "give runStrategy or the deprecated running, not both (as KubeVirt refuses)")
            }
            strategy = enumValue(v, spec.child("runStrategy"), RunStrategy.self, context) ?? strategy
        } else if let running {
            strategy = running ? .Always : .Halted
        }
        let instancetype = typeReference(spec, "instancetype", namespaced: "VirtualMachineInstancetype", cluster: "VirtualMachineClusterInstancetype")
        let preference = typeReference(spec, "preference", namespaced: "VirtualMachinePreference", cluster: "VirtualMachineClusterPreference")
        let dataVolumes = decodeDataVolumeTemplates(spec)
        refuse(spec, ["updateVolumesStrategy"], .cluster("volume migration"))
        guard let template = spec.mapping("template", required: true) else { return nil }
        defer { template.finish() }
        if let tm = template.mapping("metadata") {
            _ = tm.value("labels"); _ = tm.value("annotations"); _ = tm.value("name"); _ = tm.value("namespace"); _ = tm.value("creationTimestamp")
            tm.finish()
        }
        guard let ts = template.mapping("spec", required: true) else { return nil }
        var instance = decodeInstanceSpec(ts)
        join(dataVolumes, into: &instance, context)
        return KubeVirtVirtualMachine(metadata: meta, runStrategy: strategy, instancetype: instancetype, preference: preference, template: instance)
    }

    public func decodeVirtualMachineInstance(_ meta: ObjectMeta, _ spec: MappingReader) -> KubeVirtVirtualMachineInstance? {
        KubeVirtVirtualMachineInstance(metadata: meta, spec: decodeInstanceSpec(spec))
    }

    /// `{name, kind}`; kind defaults to the cluster-scoped one, as KubeVirt's does.
    func typeReference(_ spec: MappingReader, _ key: String, namespaced: String, cluster: String) -> VMTypeReference? {
        guard let m = spec.mapping(key) else { return nil }
        defer { m.finish() }
        refuse(m, ["revisionName"], .cluster("revisions are ControllerRevisions kept by the cluster"))
        refuse(m, ["inferFromVolume", "inferFromVolumeFailurePolicy"], .cluster("it reads labels of a cluster's PVC or DataVolume"))
        var isCluster = true
        if let v = m.value("kind"), let k = MappingReader.string(v, m.child("kind"), m.context) {
            if k == namespaced { isCluster = false } else if k != cluster {
                m.context.error(v, m.child("kind"), "\"\(k)\" is not valid; valid: \"\(namespaced)\", \"\(cluster)\"")
            }
        }
        guard let nameNode = m.required("name"), let name = MappingReader.string(nameNode, m.child("name"), m.context) else { return nil }
        return VMTypeReference(name: name, cluster: isCluster, location: nameNode.location, path: m.child("name"))
    }
}
