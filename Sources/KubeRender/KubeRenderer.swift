#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MachineCatalog
import ResourceKit
import TargetSpec
import VMSpec
import YAMLTree

/// Board resources → what a cluster runs without vtarget's supervisor: one
/// Pod (or Job) per instance running `vtarget run` on the instance's own
/// YAML, a Deployment per pool, a Deployment and a Service per CAN bus, and
/// KubeVirt objects for VMs.
public struct KubeRenderer: Sendable {
    public struct Options: Sendable {
        /// The image with vtarget and QEMU in it.
        public var image: String
        public init(image: String) { self.image = image }
    }

    /// Where things are inside the vtarget container (and, for /run/vtarget, every container of the Pod).
    public enum Paths {
        public static let spec = "/etc/vtarget/spec.yaml"
        public static let configMaps = "/etc/vtarget/configmaps"
        public static let shared = "/run/vtarget"
        public static let runtime = "/run/vtarget/runtime"
        public static let generatedMaps = "/run/vtarget/configmaps"
        /// Written once every target is Ready (the command `vtarget run` starts then).
        public static let ready = "/run/vtarget/ready"
        /// The VTARGET_* endpoint variables, as `export` lines, written before `ready`.
        public static let endpoints = "/run/vtarget/endpoints.env"
    }

    /// The user every container runs as: the run's sockets live in a 0700
    /// directory, so sidecars reach them only as the same user.
    public static let podUser = 1000
    /// Extra time for a QEMU to start before its readiness timeout counts.
    static let startSlack = 30.0
    /// A test sidecar's share of a Job's deadline when no TTL bounds it.
    static let testSidecarBudget = 1800.0

    let options: Options

    public init(options: Options) { self.options = options }

    /// One instance: a target with its instance's lifecycle on top, and the documents it came from.
    struct Member {
        var name: String
        var namespace: String
        var target: QemuVirtualTarget
        var lifecycle: Lifecycle
        var documents: [YAMLNode]
        var origins: [(kind: String, name: String, location: SourceLocation)]
        var labels: [String: String]
    }

    /// What becomes one Pod: one member, or the members of one CAN bus.
    struct Unit {
        var name: String
        var namespace: String
        var component: String
        var members: [Member]
    }

    public func render(_ resources: [Resource], sources: [SourceFile]) throws(DiagnosticError) -> [KubeObject] {
        var diags: [Diagnostic] = []
        let documents = Self.documents(sources)
        var targets: [String: QemuVirtualTarget] = [:]
        var instances: [VirtualTargetInstance] = []
        var pools: [VirtualTargetPool] = []
        var maps: [ConfigMap] = []
        var machines: [VitiMachine] = []
        var kubevirt: [Resource] = []
        var vmUsers: [VMUser] = []
        for r in resources {
            // `if case`, not a switch: kinds added to Resource later are refused here until rendered.
            if case .target(let t) = r {
                targets[t.metadata.namespace + "/" + t.metadata.name] = t
            } else if case .instance(let i) = r, i.targetKind != "QemuVirtualTarget" {
                vmUsers.append(VMUser(kind: r.kind, metadata: i.metadata, targetKind: i.targetKind, targetName: i.targetName, lifecycle: i.lifecycle))
            } else if case .instance(let i) = r {
                instances.append(i)
            } else if case .pool(let p) = r, p.targetKind != "QemuVirtualTarget" {
                vmUsers.append(VMUser(kind: r.kind, metadata: p.metadata, targetKind: p.targetKind, targetName: p.targetName, replicas: p.minReady))
            } else if case .pool(let p) = r {
                pools.append(p)
            } else if case .configMap(let c) = r {
                maps.append(c)
            } else if case .machine(let m) = r {
                machines.append(m)
            } else if case .machineClass = r {
                // Folded into its Machines' CPU and memory, as the operator reads it.
            } else if Self.isKubeVirt(r) {
                kubevirt.append(r)
            } else {
                diags.append(Diagnostic(.error, at: r.metadata.location, field: "kind",
                    "render --for kubernetes does not render \(r.kind) yet; it renders QemuVirtualTarget, VirtualTargetInstance, VirtualTargetPool, ConfigMap, KubeVirt's kinds and Viti Machines"))
            }
        }
        func document(_ kind: String, _ meta: ObjectMeta) -> YAMLNode? {
            documents[Self.key(kind, meta.namespace, meta.name)]
        }
        func targetFor(_ ns: String, _ name: String, _ meta: ObjectMeta) -> QemuVirtualTarget? {
            if let t = targets[ns + "/" + name] { return t }
            diags.append(Diagnostic(.error, at: meta.location, field: "spec.targetRef.name",
                "QemuVirtualTarget \"\(name)\" is not among the inputs; " + Suggestion.hint(name, in: targets.values.map(\.metadata.name).sorted())))
            return nil
        }
        var referenced = Set<String>()
        var members: [Member] = []
        for i in instances {
            guard let t = targetFor(i.metadata.namespace, i.targetName, i.metadata) else { continue }
            referenced.insert(i.metadata.namespace + "/" + i.targetName)
            var l = t.lifecycle
            let o = i.lifecycle
            l.ttlSeconds = o.ttlSeconds ?? l.ttlSeconds
            l.idleTTLSeconds = o.idleTTLSeconds ?? l.idleTTLSeconds
            l.readiness = o.readiness ?? l.readiness
            l.restartPolicy = o.restartPolicy ?? l.restartPolicy
            if !o.sidecars.isEmpty { l.sidecars = o.sidecars }
            if !o.tests.isEmpty { l.tests = o.tests }
            members.append(Member(
                name: i.metadata.name, namespace: i.metadata.namespace, target: t, lifecycle: l,
                documents: [document("QemuVirtualTarget", t.metadata), document("VirtualTargetInstance", i.metadata)].compactMap { $0 },
                origins: [("VirtualTargetInstance", i.metadata.name, i.metadata.location), ("QemuVirtualTarget", t.metadata.name, t.metadata.location)],
                labels: i.metadata.labels))
        }
        var poolMembers: [(VirtualTargetPool, Member)] = []
        for p in pools {
            guard let t = targetFor(p.metadata.namespace, p.targetName, p.metadata) else { continue }
            referenced.insert(p.metadata.namespace + "/" + p.targetName)
            poolMembers.append((p, Member(
                name: t.metadata.name, namespace: t.metadata.namespace, target: t, lifecycle: t.lifecycle,
                documents: [document("QemuVirtualTarget", t.metadata)].compactMap { $0 },
                origins: [("VirtualTargetPool", p.metadata.name, p.metadata.location), ("QemuVirtualTarget", t.metadata.name, t.metadata.location)],
                labels: p.metadata.labels)))
        }
        // A target no instance or pool names runs as an instance of its own name, in input order.
        for r in resources {
            guard case .target(let t) = r, !referenced.contains(t.metadata.namespace + "/" + t.metadata.name) else { continue }
            members.append(Member(
                name: t.metadata.name, namespace: t.metadata.namespace, target: t, lifecycle: t.lifecycle,
                documents: [document("QemuVirtualTarget", t.metadata)].compactMap { $0 },
                origins: [("QemuVirtualTarget", t.metadata.name, t.metadata.location)], labels: t.metadata.labels))
        }
        for m in members + poolMembers.map(\.1) { diags += Self.clusterProblems(m.target) }
        if !diags.isEmpty { throw DiagnosticError(Self.unique(diags)) }

        let units = Self.units(members)
        let canBuses = Self.canBuses(members + poolMembers.map(\.1))
        diags += Self.nameClashes(units.map { ($0.name, $0.namespace, $0.members[0].origins[0]) }
            + poolMembers.map { ($0.0.metadata.name, $0.0.metadata.namespace, $0.1.origins[0]) }
            + canBuses.map { (KubeNames.label("can", $0.bus), $0.namespace, (kind: "CAN bus", name: $0.bus, location: $0.origin.location)) })
        if !diags.isEmpty { throw DiagnosticError(diags) }

        var objects: [KubeObject] = maps.map(configMapObject)
        for b in canBuses {
            objects += busObjects(namespace: b.namespace, bus: b.bus, members: (members + poolMembers.map(\.1)).filter {
                $0.namespace == b.namespace && Self.buses($0.target).contains(b.bus)
            })
        }
        for unit in units {
            objects += podObjects(unit)
        }
        for (pool, member) in poolMembers {
            let unit = Unit(name: pool.metadata.name, namespace: pool.metadata.namespace, component: "pool", members: [member])
            objects.append(.configMap(specMap(unit)))
            let template = PodTemplate(metadata: ObjectMetadata(name: unit.name, labels: labels(unit)),
                                       spec: podSpec(unit, restartPolicy: "Always", asJob: false))
            let selector = [KubeLabels.managedBy: KubeLabels.manager, KubeLabels.name: unit.name]
            objects.append(.deployment(Deployment(metadata: metadata(unit, name: unit.name),
                spec: .init(replicas: pool.minReady, selector: .init(matchLabels: selector), template: template))))
        }
        // A VM an instance or a pool names runs only as those (KubeRenderer+VMInstances.swift).
        let runsAsOthers = Set(vmUsers.map(\.target))
        let ownKubevirt = kubevirt.filter { !runsAsOthers.contains(Self.key($0.kind, $0.metadata.namespace, $0.metadata.name)) }
        let ownMachines = machines.filter { !runsAsOthers.contains(Self.key("Machine", $0.metadata.namespace, $0.metadata.name)) }
        for r in ownKubevirt {
            let meta = r.metadata
            if let o = passThrough(r, document: document(r.kind, meta) ?? documents[Self.key(r.kind, "default", meta.name)]) { objects.append(o) }
        }
        for m in ownMachines {
            do {
                objects += try vitiObjects(m, document: document("Machine", m.metadata))
            } catch {
                diags += error.diagnostics
            }
        }
        let users = vmUserObjects(vmUsers, kubevirt: kubevirt, machines: machines, documents: documents)
        objects += users.objects
        diags += users.problems
        // A VirtualMachine makes a VMI of its name: VMs, VMIs, Machines and VM instances share a namespace's names.
        diags += Self.nameClashes(
            ownKubevirt.filter { $0.kind == "VirtualMachine" || $0.kind == "VirtualMachineInstance" }
                .map { ($0.metadata.name, $0.metadata.namespace, ($0.kind, $0.metadata.name, $0.metadata.location)) }
            + ownMachines.map { ($0.metadata.name, $0.metadata.namespace, ("Machine", $0.metadata.name, $0.metadata.location)) }
            + vmUsers.filter { $0.replicas == nil }
                .map { ($0.metadata.name, $0.metadata.namespace, ($0.kind, $0.metadata.name, $0.metadata.location)) })
        if !diags.isEmpty { throw DiagnosticError(diags) }
        return objects
    }

    static func isKubeVirt(_ r: Resource) -> Bool {
        switch r {
        case .virtualMachine, .virtualMachineInstance, .instancetype, .preference, .volumeClaim: return true
        default: return false
        }
    }

    // MARK: Units

    /// One Pod per member: members of a CAN bus join it over the network
    /// (`busObjects`), so they need not share a Pod or a node.
    static func units(_ members: [Member]) -> [Unit] {
        members.map { Unit(name: $0.name, namespace: $0.namespace, component: "target", members: [$0]) }
    }

    /// Each CAN bus (namespace and name) once, in input order, with the first member naming it.
    static func canBuses(_ members: [Member]) -> [(namespace: String, bus: String, origin: (kind: String, name: String, location: SourceLocation))] {
        var seen = Set<String>()
        var out: [(namespace: String, bus: String, origin: (kind: String, name: String, location: SourceLocation))] = []
        for m in members {
            for bus in buses(m.target) where seen.insert(m.namespace + "/" + bus).inserted {
                out.append((m.namespace, bus, m.origins[0]))
            }
        }
        return out
    }

    /// Two Pods (or a Pod and a pool's Deployment, whose spec ConfigMaps
    /// share a name) of one name in a namespace: reported at the later resource.
    static func nameClashes(_ names: [(name: String, namespace: String, origin: (kind: String, name: String, location: SourceLocation))]) -> [Diagnostic] {
        var first: [String: (kind: String, name: String, location: SourceLocation)] = [:]
        var out: [Diagnostic] = []
        // In input order, so the one written later is the one reported.
        var fileRank: [String: Int] = [:]
        for n in names where fileRank[n.origin.location.file] == nil { fileRank[n.origin.location.file] = fileRank.count }
        let ordered = names.sorted { a, b in
            let (x, y) = (a.origin.location, b.origin.location)
            return (fileRank[x.file]!, x.line, x.column) < (fileRank[y.file]!, y.line, y.column)
        }
        for n in ordered {
            let key = n.namespace + "/" + n.name
            if let f = first[key] {
                out.append(Diagnostic(.error, at: n.origin.location, field: "metadata.name",
                    "\(n.origin.kind) \"\(n.origin.name)\" would make objects named \"\(n.name)\" in namespace \(n.namespace), as \(f.kind) \"\(f.name)\" (\(f.location)) does; rename one of them"))
            } else {
                first[key] = n.origin
            }
        }
        return out
    }

    static func buses(_ t: QemuVirtualTarget) -> [String] {
        t.qemu.devices.compactMap { d in
            if case .can(let bus, _) = d.kind { return bus }
            return nil
        }
    }

    /// What a cluster cannot provide: files beside the YAML and host paths.
    static func clusterProblems(_ t: QemuVirtualTarget) -> [Diagnostic] {
        t.qemu.drives.compactMap { d in
            switch d.source {
            case .file:
                return Diagnostic(.error, at: d.location, field: d.path + ".source.file",
                    "a file beside the YAML is not on a cluster; put it in a ConfigMap (`vtarget create configmap NAME --from-file=PATH --dry-run=client -o yaml`) and use source.configMap")
            case .hostPath:
                return Diagnostic(.error, at: d.location, field: d.path + ".source.hostPath",
                    "a host path is not on a cluster's nodes; put the image in a ConfigMap and use source.configMap")
            case .configMap, .emptyDisk:
                return nil
            }
        }
    }

    static func unique(_ diags: [Diagnostic]) -> [Diagnostic] {
        var said = Set<String>()
        return diags.filter { said.insert($0.description).inserted }
    }

    // MARK: Objects

    func podObjects(_ unit: Unit) -> [KubeObject] {
        let lifecycles = unit.members.map(\.lifecycle)
        let hasTests = lifecycles.contains { !$0.tests.isEmpty }
        let hasTestSidecars = lifecycles.contains { $0.sidecars.contains { $0.role == .test } }
        let ttl = lifecycles.compactMap(\.ttlSeconds).max()
        var out: [KubeObject] = [.configMap(specMap(unit))]
        let policies = lifecycles.compactMap(\.restartPolicy)
        if hasTests || hasTestSidecars || ttl != nil {
            let retry = policies.contains { $0 != .Never }
            var deadline: Double
            if let ttl {
                deadline = ttl
            } else {
                deadline = bootBudget(unit) + lifecycles.flatMap(\.tests).flatMap(\.steps).reduce(0) { sum, step in
                    if case .expect(_, let t, _) = step { return sum + t }
                    return sum
                } + (hasTestSidecars ? Self.testSidecarBudget : 0)
            }
            let template = PodTemplate(metadata: ObjectMetadata(name: unit.name, labels: labels(unit)),
                                       spec: podSpec(unit, restartPolicy: retry ? "OnFailure" : "Never", asJob: true))
            out.append(.job(Job(metadata: metadata(unit, name: unit.name),
                                spec: .init(activeDeadlineSeconds: Int(deadline.rounded(.up)), backoffLimit: retry ? 6 : 0, template: template))))
        } else {
            // vtarget's default is Never: a QEMU that exits is not started again unless asked.
            let policy = policies.contains(.Always) ? "Always" : policies.contains(.OnFailure) ? "OnFailure" : "Never"
            out.append(.pod(Pod(metadata: metadata(unit, name: unit.name), spec: podSpec(unit, restartPolicy: policy, asJob: false))))
        }
        return out
    }

    /// How long the slowest member may take to become Ready.
    func bootBudget(_ unit: Unit) -> Double {
        (unit.members.map { $0.lifecycle.readiness?.timeoutSeconds ?? 60 }.max() ?? 60) + Self.startSlack
    }

    func labels(_ unit: Unit) -> [String: String] {
        // The user's labels go along when Kubernetes would take them (vtarget itself accepts any strings).
        var l = (unit.members.count == 1 ? unit.members[0].labels : [:]).filter { Self.isLabel(key: $0.key, value: $0.value) }
        l[KubeLabels.managedBy] = KubeLabels.manager
        l[KubeLabels.name] = unit.name
        l[KubeLabels.component] = unit.component
        return l
    }

    /// Kubernetes' label syntax: `[prefix/]name` (prefix a DNS subdomain), value empty or a qualified name.
    static func isLabel(key: String, value: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.last, Names.isQualifiedName(name) else { return false }
        if parts.count == 2 {
            let prefix = parts[0]
            guard !prefix.isEmpty, prefix.utf8.count <= 253, prefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ Names.isDNSLabel($0) }) else { return false }
        }
        return value.isEmpty || Names.isQualifiedName(value)
    }

    func metadata(_ unit: Unit, name: String) -> ObjectMetadata {
        let origins = unit.members.flatMap(\.origins)
        var seen = Set<String>()
        let made = origins.map { "\($0.kind)/\($0.name)" }.filter { seen.insert($0).inserted }
        seen = []
        let where_ = origins.map { "\($0.location)" }.filter { seen.insert($0).inserted }
        return ObjectMetadata(name: name, namespace: unit.namespace, labels: labels(unit),
                              annotations: [KubeLabels.madeFrom: made.joined(separator: ", "), KubeLabels.source: where_.joined(separator: ", ")])
    }

    /// The unit's own resources as `vtarget run` reads them: the documents
    /// as written, without `status`, and without `sidecars`, which are the
    /// Pod's containers here.
    func specMap(_ unit: Unit) -> ConfigMapObject {
        var docs: [YAMLNode] = []
        var seen = Set<String>()
        for m in unit.members {
            for d in m.documents {
                let key = "\(d.location)"
                guard seen.insert(key).inserted else { continue }
                docs.append(Self.withoutSidecars(d))
            }
        }
        return ConfigMapObject(metadata: metadata(unit, name: KubeNames.label(unit.name, "spec")),
                               data: ["spec.yaml": YAMLEmitter.emit(docs)])
    }

    static func withoutSidecars(_ doc: YAMLNode) -> YAMLNode {
        guard case .mapping(let pairs) = doc.content else { return doc }
        var out = doc
        out.content = .mapping(pairs.compactMap { p in
            if p.key.scalar == "status" { return nil }
            guard p.key.scalar == "spec", case .mapping(let spec) = p.value.content else { return p }
            var v = p.value
            v.content = .mapping(spec.filter { $0.key.scalar != "sidecars" })
            return YAMLPair(key: p.key, value: v)
        })
        return out
    }

    func configMapObject(_ c: ConfigMap) -> KubeObject {
        var data: [String: String] = [:]
        var binary: [String: String] = [:]
        for key in c.keyOrder {
            let bytes = c.entries[key] ?? []
            if let s = String(validating: bytes, as: UTF8.self), !s.unicodeScalars.contains(where: { $0.value == 0 }) {
                data[key] = s
            } else {
                binary[key] = Data(bytes).base64EncodedString()
            }
        }
        return .configMap(ConfigMapObject(
            metadata: ObjectMetadata(name: c.metadata.name, namespace: c.metadata.namespace,
                                     labels: c.metadata.labels.isEmpty ? nil : c.metadata.labels,
                                     annotations: [KubeLabels.madeFrom: "ConfigMap/" + c.metadata.name, KubeLabels.source: "\(c.metadata.location)"]),
            data: data, binaryData: binary.isEmpty ? nil : binary))
    }

    // MARK: The Pod

    func podSpec(_ unit: Unit, restartPolicy: String, asJob: Bool) -> PodSpec {
        let lifecycles = unit.members.map(\.lifecycle)
        let declarativeOnly = asJob && !lifecycles.contains { $0.sidecars.contains { $0.role == .test } }
            && lifecycles.contains { !$0.tests.isEmpty }
        var firmware: [String] = []
        for m in unit.members {
            for d in m.target.qemu.drives {
                if case .configMap(let name, _) = d.source, !firmware.contains(name) { firmware.append(name) }
            }
        }
        let shared = Container.VolumeMount(name: "run", mountPath: Paths.shared)
        var mounts = [shared, Container.VolumeMount(name: "spec", mountPath: Paths.spec, subPath: "spec.yaml", readOnly: true)]
        var volumes = [Volume(name: "run", emptyDir: .init()), Volume(name: "spec", configMap: .init(name: KubeNames.label(unit.name, "spec")))]
        for name in firmware {
            let v = KubeNames.label("cm", name)
            mounts.append(.init(name: v, mountPath: Paths.configMaps + "/" + name, readOnly: true))
            volumes.append(Volume(name: v, configMap: .init(name: name)))
        }
        // With declarative tests and no test sidecar, `vtarget run` ends with the tests' verdict;
        // otherwise it runs a command once Ready that publishes the endpoints and stays.
        let probe = Probe(exec: .init(command: ["test", "-e", Paths.ready]), periodSeconds: 2)
        let kvm = unit.members.contains { $0.target.qemu.accel == .kvm }
        var main = Container(
            name: "vtarget", image: options.image,
            command: ["sh", "-c", startScript(unit, firmware: firmware, publish: !declarativeOnly)],
            env: [.init(name: "VTARGET_RUNTIME_DIR", value: Paths.runtime)] + remoteBusVariable(unit),
            ports: ports(unit),
            resources: kvm ? .init(limits: ["devices.kubevirt.io/kvm": "1"]) : nil,
            volumeMounts: mounts,
            readinessProbe: declarativeOnly ? nil : probe)
        var helpers: [Container] = []
        var tests: [Container] = []
        for m in unit.members {
            for s in m.lifecycle.sidecars {
                let name = unit.members.count == 1 ? s.name : KubeNames.label(m.name, s.name)
                var c = Container(
                    name: name, image: s.image ?? options.image,
                    command: ["sh", "-c", "until [ -e \(Paths.ready) ]; do sleep 1; done; . \(Paths.endpoints); exec \"$@\"", s.name] + s.command,
                    env: s.env.isEmpty ? nil : s.env.map { .init(name: $0.name, value: $0.value) },
                    volumeMounts: [shared])
                if s.role == .test {
                    tests.append(c)
                } else {
                    c.restartPolicy = "Always"
                    helpers.append(c)
                }
            }
        }
        var initContainers = helpers
        var containers = [main]
        if asJob && !tests.isEmpty {
            // vtarget as a native sidecar: the tests start once it is Ready and decide the Job; it stops with them.
            main.restartPolicy = "Always"
            main.startupProbe = Probe(exec: probe.exec, periodSeconds: 2, failureThreshold: Int((bootBudget(unit) / 2).rounded(.up)))
            initContainers = [main] + helpers
            containers = tests
        } else {
            containers += tests
        }
        return PodSpec(restartPolicy: restartPolicy,
                       securityContext: .init(runAsUser: Self.podUser, runAsGroup: Self.podUser, fsGroup: Self.podUser),
                       initContainers: initContainers.isEmpty ? nil : initContainers,
                       containers: containers, volumes: volumes)
    }

    /// The vtarget container's script: each mounted firmware ConfigMap made
    /// back into a ConfigMap document (its keys are its files), then `vtarget run`.
    func startScript(_ unit: Unit, firmware: [String], publish: Bool) -> String {
        var lines = ["set -eu"]
        if !firmware.isEmpty { lines.append("mkdir -p \(Paths.generatedMaps)") }
        for name in firmware {
            lines.append("set --; for f in \(Paths.configMaps)/\(name)/*; do set -- \"$@\" \"--from-file=$f\"; done")
            lines.append("vtarget create configmap \(name) -n \(unit.namespace) \"$@\" --dry-run=client -o yaml > \(Paths.generatedMaps)/\(name).yaml")
        }
        var run = "exec vtarget run -f \(Paths.spec)"
        if !firmware.isEmpty { run += " -f \(Paths.generatedMaps)" }
        if publish {
            run += " -- sh -c 'export -p | grep \" VTARGET_\" > \(Paths.endpoints).tmp && mv \(Paths.endpoints).tmp \(Paths.endpoints) && touch \(Paths.ready) && exec sleep infinity'"
        }
        lines.append(run)
        return lines.joined(separator: "\n")
    }

    /// Endpoints on a fixed TCP port (a serial device's `rfc2217: PORT`);
    /// they listen on the Pod's loopback, for `kubectl port-forward`.
    func ports(_ unit: Unit) -> [Container.ContainerPort]? {
        var out: [Container.ContainerPort] = []
        for m in unit.members {
            for d in m.target.qemu.devices {
                guard let port = d.rfc2217Port, port > 0 else { continue }
                var name = KubeNames.port("rfc", d.name)
                if out.contains(where: { $0.name == name }) { name = KubeNames.port("rfc", m.name + "-" + d.name) }
                out.append(.init(name: name, containerPort: port))
            }
        }
        return out.isEmpty ? nil : out
    }

    // MARK: Source documents

    static func key(_ kind: String, _ namespace: String, _ name: String) -> String { "\(kind)/\(namespace)/\(name)" }

    /// Every input document by kind, namespace and name: the decoder has
    /// accepted them, so they parse.
    static func documents(_ sources: [SourceFile]) -> [String: YAMLNode] {
        var out: [String: YAMLNode] = [:]
        for s in sources {
            guard let docs = try? YAMLParser.parse(s.bytes, file: s.path) else { continue }
            for d in docs {
                guard let kind = d.root["kind"]?.scalar, let name = d.root[path: ["metadata", "name"]]?.scalar else { continue }
                let ns = d.root[path: ["metadata", "namespace"]]?.scalar ?? "default"
                out[key(kind, ns, name)] = d.root
            }
        }
        return out
    }
}
