import ControlAPI
import InstanceContract
import MachineCatalog
import ResourceKit
import TargetSpec
import YAMLTree

extension Supervisor {
    // MARK: - Desired state

    /// One instance as the resources describe it, with the spec its shim runs.
    struct DesiredInstance {
        var namespace: String
        var name: String
        var target: String
        var machine: String
        var restartPolicy: String
        var ttlSeconds: Double?
        var spec: String
        var directory: String
        var options: ReadOptions
        var serialDevices: [String]
        var canBuses: [String]
        var hash: String
        /// For `get -l`; not part of the hash (a label changes no QEMU).
        var labels: [String: String] = [:]
        /// Who its sidecars run as.
        var owner: ProcessOwner?
        /// A Manual VM: kept while its instance exists, created only by `vtarget start`.
        var onRequest = false
    }

    /// A VM as `start` and `stop` need it: its kind and decoded runStrategy.
    struct StoredVM {
        var kind: String
        var runStrategy: String
        /// How long `stop` waits after the ACPI power button (nil: KubeVirt's 180 s).
        var terminationGracePeriodSeconds: Int?
    }

    /// Decodes a namespace's resources and works out its instances; what
    /// would not run (a missing target or ConfigMap) is an error here, so an
    /// apply or delete that breaks a namespace is refused whole.
    func desiredInstances(_ namespaceRows: [ResourceRow]) throws(SupervisorError) -> DesiredState {
        // Cluster-scoped kinds (KubeVirt's cluster instancetypes and
        // preferences, Viti's MachineClass) are stored once, in no namespace,
        // and serve every namespace; the caller's rows may hold a new version.
        var rows = namespaceRows
        let stored: [ResourceRow]
        do { stored = try store.resources(namespace: KindRegistry.clusterScope) } catch { throw .storage(error) }
        for o in stored where !rows.contains(where: { $0.kind == o.kind && $0.namespace == o.namespace && $0.name == o.name }) {
            rows.append(o)
        }
        var resources: [Resource] = []
        var problems: [Diagnostic] = []
        var byKey: [String: ResourceRow] = [:]
        var byLabel: [String: ResourceRow] = [:]
        for r in rows {
            byKey[r.kind + "/" + r.name] = r
            let label = Self.sourceLabel(r)
            byLabel[label] = r
            let decoder = ResourceDecoder(catalog: catalog, options: DecodeOptions(
                strict: !r.options.lenient, allowHostPaths: r.options.allowHostPaths, allowExtraArgs: r.options.allowExtraArgs))
            do {
                resources += try decoder.decode([SourceFile(path: label, directory: r.directory, bytes: Array(r.yaml.utf8))], resolvingVMs: false).resources
            } catch {
                problems += error.diagnostics
            }
        }
        // A VM's instancetype or class is another row: resolve them all together.
        if problems.isEmpty {
            do { try ResourceDecoder.resolveVMs(&resources) } catch { problems = error.diagnostics }
        }
        if problems.isEmpty {
            do { _ = try Workload.instances(from: resources) } catch { problems = error.diagnostics }
        }
        if !problems.isEmpty { throw Self.unprocessable(problems, byLabel) }
        let runnables: [RunnableTarget]
        do { runnables = try Workload.instances(from: resources) } catch { throw Self.unprocessable(error.diagnostics, byLabel) }
        /// The spec a shim runs: the instance (if any), its target, the target's ConfigMaps.
        /// The owner is whoever applied the instance (else its target, or the
        /// pool): that user's identity is what its sidecars get.
        func compose(_ name: String, _ namespace: String, _ target: QemuVirtualTarget, _ lifecycle: Lifecycle,
                     instanceRow: ResourceRow?, ownerRow: ResourceRow? = nil) -> DesiredInstance? {
            guard let targetRow = byKey["QemuVirtualTarget/" + target.metadata.name] else { return nil }
            var docs: [String] = instanceRow.map { [$0.yaml] } ?? []
            docs.append(targetRow.yaml)
            var maps: [String] = []
            for d in target.qemu.drives {
                if case .configMap(let map, _) = d.source, let cm = byKey["ConfigMap/" + map], !maps.contains(map) {
                    maps.append(map)
                    docs.append(cm.yaml)
                }
            }
            let spec = docs.joined(separator: "---\n")
            let serial = target.qemu.devices.compactMap { d -> String? in
                if case .serial = d.kind { return d.name }
                return nil
            }
            var buses: [String] = []
            for d in target.qemu.devices { if case .can(let bus, _) = d.kind, !buses.contains(bus) { buses.append(bus) } }
            let o = targetRow.options
            let owner = (ownerRow ?? instanceRow ?? targetRow).owner
            let who = owner.map { "\($0.uid):\($0.gid):\($0.groups)" } ?? ""
            let hash = Self.fingerprint(spec + "\u{0}" + targetRow.directory + "\u{0}\(o.lenient)\(o.allowHostPaths)\(o.allowExtraArgs)\u{0}" + who)
            var d = DesiredInstance(namespace: namespace, name: name, target: target.metadata.name,
                                    machine: target.qemu.machine.value, restartPolicy: (lifecycle.restartPolicy ?? .Never).rawValue,
                                    ttlSeconds: lifecycle.ttlSeconds, spec: spec, directory: targetRow.directory,
                                    options: o, serialDevices: serial, canBuses: buses, hash: hash)
            d.owner = owner
            return d
        }
        var state = DesiredState()
        var instanceLabels: [String: [String: String]] = [:]
        for case .instance(let i) in resources { instanceLabels[i.metadata.name] = i.metadata.labels }
        state.instances = runnables.compactMap { rn in
            var d = compose(rn.name, rn.namespace, rn.target, rn.lifecycle, instanceRow: byKey["VirtualTargetInstance/" + rn.name])
            d?.labels = instanceLabels[rn.name] ?? rn.target.metadata.labels
            return d
        }
        let vms: [RunnableVM]
        do { vms = try Workload.vms(from: resources, boards: runnables) } catch { throw Self.unprocessable(error.diagnostics, byLabel) }
        // What a VM's resolution reads besides its own row: the namespace's
        // instancetypes, preferences and classes, so the shim resolves it alike.
        let vmSupport = rows.filter { Self.vmSupportKinds.contains($0.kind) }.sorted { $0.kind + $0.name < $1.kind + $1.name }
        // A VirtualTargetInstance of a VM: the VM runs as it (Workload.vms renamed it).
        var vmInstances: [String: VirtualTargetInstance] = [:]
        for case .instance(let i) in resources where i.targetKind != "QemuVirtualTarget" { vmInstances[i.metadata.name] = i }
        for v in vms {
            state.vms[v.name] = StoredVM(kind: v.vm.api.rawValue, runStrategy: v.vm.runStrategy.rawValue,
                                         terminationGracePeriodSeconds: v.vm.terminationGracePeriodSeconds)
            let instanceRow = vmInstances[v.name].flatMap { _ in byKey["VirtualTargetInstance/" + v.name] }
            let vmRow = vmInstances[v.name].map { byKey[$0.targetKind + "/" + $0.targetName] } ?? byKey[v.vm.api.rawValue + "/" + v.name]
            // KubeVirt's runStrategy: Halted waits (`vtarget start` makes it
            // Always), Manual runs once started; the others run now.
            guard v.vm.runStrategy != .Halted, let row = vmRow else { continue }
            // The ConfigMaps and Secrets its volumes and cloud-init name (found: Workload.vms checked),
            // and the claims or DataVolumes that size its volumes.
            let objects = Set(v.vm.disks.flatMap { $0.source.objectKeys }).sorted().compactMap { byKey[$0]?.yaml }
            let spec = ((instanceRow.map { [$0.yaml] } ?? []) + [row.yaml] + vmSupport.map(\.yaml) + objects).joined(separator: "---\n")
            let o = row.options
            let who = row.owner.map { "\($0.uid):\($0.gid):\($0.groups)" } ?? ""
            var d = DesiredInstance(namespace: v.namespace, name: v.name, target: "\(v.vm.api.rawValue)/\(v.name)",
                                    machine: v.vm.machineType, restartPolicy: (v.lifecycle.restartPolicy ?? .Never).rawValue,
                                    ttlSeconds: nil, spec: spec, directory: row.directory, options: o,
                                    serialDevices: v.vm.serialConsole ? ["console"] : [], canBuses: [],
                                    hash: Self.fingerprint(spec + "\u{0}" + row.directory + "\u{0}\(o.lenient)\(o.allowHostPaths)\(o.allowExtraArgs)\u{0}" + who))
            d.owner = row.owner
            d.labels = v.vm.metadata.labels
            d.onRequest = v.vm.runStrategy == .Manual
            state.instances.append(d)
        }
        for case .pool(let p) in resources {
            if p.targetKind != "QemuVirtualTarget" {
                if let t = vmPoolTemplate(p, resources: resources, byKey: byKey, support: vmSupport) { state.pools.append(t) }
                continue
            }
            guard case .target(let t)? = resources.first(where: {
                if case .target(let t) = $0 { return t.metadata.name == p.targetName }
                return false
            }), var template = compose("", p.metadata.namespace, t, t.lifecycle, instanceRow: nil,
                                                 ownerRow: byKey["VirtualTargetPool/" + p.metadata.name]) else { continue }
            // Members restart on failure: a pool keeps its targets warm.
            template.restartPolicy = "OnFailure"
            template.labels = p.metadata.labels
            template.hash = Self.fingerprint(template.hash + p.recycle.rawValue + (p.readiness.map { "\u{0}\($0.device)\u{0}\($0.pattern)\u{0}\($0.timeoutSeconds)" } ?? ""))
            let snapshots = p.recycle == .snapshot && (catalog.lookup(t.qemu.profileName)?.snapshots ?? false)
            state.pools.append(PoolTemplate(pool: p, member: template, snapshots: snapshots))
        }
        return state
    }

    struct PoolTemplate {
        var pool: VirtualTargetPool
        /// A member's desired instance, its name left empty.
        var member: DesiredInstance
        /// Release restores the `vt-ready` snapshot (else restarts the member).
        var snapshots: Bool
    }

    struct DesiredState {
        var instances: [DesiredInstance] = []
        var pools: [PoolTemplate] = []
        /// Every VM of the namespace by name, whether it runs or not.
        var vms: [String: StoredVM] = [:]
    }

    /// The kinds a VM's resolution may read (its instancetype, preference or class).
    static let vmSupportKinds: Set<String> = ["VirtualMachineInstancetype", "VirtualMachineClusterInstancetype",
                                              "VirtualMachinePreference", "VirtualMachineClusterPreference", "MachineClass"]

    static let clusterKinds = Set(KindRegistry.builtIn.kinds.filter { !$0.namespaced }.map(\.kind))

    /// What a stored resource is called in diagnostics (its "file").
    static func sourceLabel(_ r: ResourceRow) -> String {
        r.namespace == KindRegistry.clusterScope ? "\(r.kind) \(r.name)" : "\(r.kind) \(r.namespace)/\(r.name)"
    }

    /// A 422 whose diagnostics say which stored resource, and where in it,
    /// so the CLI can name the user's file and line; the message reads well
    /// on its own for other clients.
    static func unprocessable(_ diagnostics: [Diagnostic], _ byLabel: [String: ResourceRow]) -> SupervisorError {
        let errors = diagnostics.filter { $0.severity == .error }
        var e = SupervisorError(422, errors.map(\.description).joined(separator: "\n"))
        e.diagnostics = errors.compactMap { d in
            guard let loc = d.location, let r = byLabel[loc.file] else { return nil }
            return APIDiagnostic(kind: r.kind, namespace: r.namespace, name: r.name, line: loc.line, column: loc.column, field: d.field, message: d.message)
        }
        return e
    }

    /// FNV-1a, 64 bits: tells a changed spec from an unchanged one.
    static func fingerprint(_ s: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return String(h, radix: 16)
    }
}
