import MachineCatalog
import YAMLTree
import struct VMSpec.VMDefinition
import enum VMSpec.RunStrategy
import struct VMSpec.VMDisk
import struct VMSpec.VolumeClaim

/// One instance to start: its target's spec with the instance's lifecycle
/// fields layered on top (the instance wins), and its firmware data.
public struct RunnableTarget: Sendable {
    public var name: String
    public var namespace: String
    public var target: QemuVirtualTarget
    public var lifecycle: Lifecycle
    /// ConfigMap-backed drives, by drive name: the bytes to load.
    public var configData: [String: [UInt8]]
}

/// One VM to start: its resolved definition and the lifecycle vtarget's
/// session keeps for every instance (KubeVirt's runStrategy mapped onto
/// restart policies; VMs have no TTL, tests or sidecars of their own yet).
public struct RunnableVM: Sendable {
    public var name: String
    public var namespace: String
    public var vm: VMDefinition
    public var lifecycle: Lifecycle
    /// A `configMap` volume's keys and bytes, by disk name: what its ISO holds.
    public var volumeData: [String: [String: [UInt8]]] = [:]

    public init(_ vm: VMDefinition) {
        self.vm = vm
        name = vm.metadata.name
        namespace = vm.metadata.namespace
        var l = Lifecycle()
        switch vm.runStrategy {
        case .Always: l.restartPolicy = .Always
        case .RerunOnFailure: l.restartPolicy = .OnFailure
        case .Once, .Manual, .Halted: l.restartPolicy = .Never
        }
        lifecycle = l
    }
}

extension VMDisk.Source {
    /// The `Kind/name` of each ConfigMap or Secret this volume reads.
    public var objectKeys: [String] {
        switch self {
        case .configMap(let name): return ["ConfigMap/" + name]
        case .secret(let name): return ["Secret/" + name]
        case .cloudInit(let c): return [c.userDataSecret, c.networkDataSecret].compactMap { $0.map { "Secret/" + $0 } }
        // Whichever of the two is there (none for a volume a VM's own template makes).
        case .volume(let name, _, _, _): return ["PersistentVolumeClaim/" + name, "DataVolume/" + name]
        default: return []
        }
    }
}

public enum Workload {
    /// Every VM of the inputs, in the order written. A VM's name is an
    /// instance name like a board's: the two share directories and rows, so
    /// a clash with a board instance is refused as two boards' would be.
    public static func vms(from resources: [Resource], boards: [RunnableTarget]) throws(DiagnosticError) -> [RunnableVM] {
        var out: [RunnableVM] = []
        var diags: [Diagnostic] = []
        let boardNames = Set(boards.map { $0.namespace + "/" + $0.name })
        // A VM that an instance (a pool's member) or a pool names runs only as
        // those instances: renamed, with the instance's lifecycle on top.
        var runsAs: [String: [VirtualTargetInstance]] = [:]
        // `member`: the instance's name, or as long a name as a pool's members get.
        var named: [(key: String, kind: String, location: SourceLocation, readiness: Readiness?, members: Int, member: String, pool: Bool)] = []
        for r in resources {
            if case .instance(let i) = r, i.targetKind != "QemuVirtualTarget" {
                runsAs[i.targetKind + "/" + i.metadata.namespace + "/" + i.targetName, default: []].append(i)
                named.append((i.targetKind + "/" + i.metadata.namespace + "/" + i.targetName, i.targetKind, i.metadata.location, i.lifecycle.readiness, 1,
                              i.metadata.name, false))
            }
            if case .pool(let p) = r, p.targetKind != "QemuVirtualTarget" {
                runsAs[p.targetKind + "/" + p.metadata.namespace + "/" + p.targetName, default: []] += []
                named.append((p.targetKind + "/" + p.metadata.namespace + "/" + p.targetName, p.targetKind, p.metadata.location, p.readiness, p.maxInstances,
                              p.memberName(unique: String(repeating: "x", count: VirtualTargetPool.memberSuffixLength)), true))
            }
        }
        var present: [String: VMDefinition] = [:]
        for r in resources { if let vm = r.vmDefinition { present[r.kind + "/" + vm.metadata.namespace + "/" + vm.metadata.name] = vm } }
        for n in named {
            let (ns, name) = (n.key.split(separator: "/")[1], n.key.split(separator: "/")[2])
            guard let vm = present[n.key] else {
                let known = resources.filter { $0.kind == n.kind && $0.metadata.namespace == ns }.map(\.metadata.name).sorted()
                diags.append(Diagnostic(.error, at: n.location, field: "spec.targetRef.name",
                    "\(n.kind) \"\(name)\" is not among the inputs; " + Suggestion.hint(String(name), in: known)))
                continue
            }
            // A claim's volume is one file: two members would both open it (QEMU's lock refuses the second).
            // What the VM makes itself (its DataVolume templates, a Machine's disks), each member makes its own of.
            if n.members > 1 {
                for d in vm.disks where d.owner == nil {
                    guard case .volume(let volume, _, _, _) = d.source else { continue }
                    diags.append(Diagnostic(.error, at: n.location, field: "spec.maxInstances",
                        "up to \(n.members) members of VM \"\(name)\" would share its volume \"\(volume)\" (disk \(d.name)); "
                        + "give the pool maxInstances: 1, or the VM a DataVolume template, emptyDisk or containerDisk, which each member gets its own of"))
                }
            }
            for (d, own) in vm.invalidInstanceVolumes(instance: n.member) {
                diags.append(Diagnostic(.error, at: n.location, field: "metadata.name",
                    "\(n.pool ? "a member's" : "this instance's") own volume for disk \(d.name) would be named \"\(own)\", "
                    + "longer than the 63 characters a name may have; give the \(n.pool ? "pool" : "instance") a shorter name"))
            }
            // The pattern is looked for on the VM's console, its only serial device.
            if let readiness = n.readiness, !vm.serialConsole || readiness.device != "console" {
                diags.append(Diagnostic(.error, at: readiness.location, field: "spec.readiness.device",
                    vm.serialConsole ? "a VM's serial device is \"console\", not \"\(readiness.device)\""
                        : "VM \"\(name)\" has no serial console (autoattachSerialConsole: false), so no readiness pattern can be seen"))
            }
        }
        for r in resources {
            guard let template = r.vmDefinition else { continue }
            let instances: [VirtualTargetInstance?] = runsAs[r.kind + "/" + template.metadata.namespace + "/" + template.metadata.name].map { $0 } ?? [nil]
            for instance in instances {
                let vm = instance.map { template.running(as: $0.metadata.name) } ?? template
                let key = vm.metadata.namespace + "/" + vm.metadata.name
                if boardNames.contains(key) || out.contains(where: { $0.namespace + "/" + $0.name == key }) {
                    diags.append(Diagnostic(.error, at: instance?.metadata.location ?? r.metadata.location, field: "metadata.name",
                        "another instance is already named \"\(vm.metadata.name)\" in namespace \(vm.metadata.namespace); instance names are unique in a namespace, VMs and boards alike"))
                    continue
                }
                var runnable = RunnableVM(vm)
                if let l = instance?.lifecycle {
                    runnable.lifecycle.readiness = l.readiness ?? runnable.lifecycle.readiness
                    runnable.lifecycle.ttlSeconds = l.ttlSeconds ?? runnable.lifecycle.ttlSeconds
                    runnable.lifecycle.idleTTLSeconds = l.idleTTLSeconds ?? runnable.lifecycle.idleTTLSeconds
                    runnable.lifecycle.restartPolicy = l.restartPolicy ?? runnable.lifecycle.restartPolicy
                }
                let ns = vm.metadata.namespace
                var maps: [ConfigMap] = [], secrets: [Secret] = [], claims: [String: [VolumeClaim]] = [:]
                for r in resources where r.metadata.namespace == ns {
                    if case .configMap(let c) = r { maps.append(c) }
                    if case .secret(let s) = r { secrets.append(s) }
                    if case .volumeClaim(let c) = r { claims[c.metadata.name, default: []].append(c) }
                }
                /// The named object's keys, or a positioned error naming what is there.
                func keys(_ kind: String, _ name: String, _ field: String, _ d: VMDisk, _ known: [(String, [String: [UInt8]])]) -> [String: [UInt8]]? {
                    if let found = known.first(where: { $0.0 == name }) { return found.1 }
                    // KubeVirt's `optional`: a missing object is a disk with no files.
                    if d.optional { return [:] }
                    diags.append(Diagnostic(.error, at: d.location ?? vm.metadata.location, field: field,
                        "\(kind) \"\(name)\" is not among the inputs; give it with -f beside the VM"
                        + (known.isEmpty ? "" : "; " + Suggestion.hint(name, in: known.map { $0.0 }.sorted()))))
                    return nil
                }
                let mapKeys = maps.map { ($0.metadata.name, $0.entries) }, secretKeys = secrets.map { ($0.metadata.name, $0.entries) }
                // A claim or DataVolume of its own, of a volume's name, gives it its size and content
                // (a VM's own template, already joined, wins: KubeVirt makes the template's).
                for (i, d) in runnable.vm.disks.enumerated() {
                    guard case .volume(let name, nil, nil, nil) = d.source, let named = claims[name], let claim = named.first else { continue }
                    if named.count > 1 {
                        diags.append(Diagnostic(.error, at: named[1].metadata.location, field: "metadata.name",
                            "a PersistentVolumeClaim and a DataVolume are both named \"\(name)\" in namespace \(ns); one volume has one of them"))
                    }
                    runnable.vm.disks[i].source = .volume(name: name, capacityBytes: claim.capacityBytes, storageClass: claim.storageClass, content: claim.content)
                }
                for d in vm.disks {
                    switch d.source {
                    case .configMap(let name):
                        runnable.volumeData[d.name] = keys("ConfigMap", name, "volumes.configMap.name", d, mapKeys)
                    case .secret(let name):
                        runnable.volumeData[d.name] = keys("Secret", name, "volumes.secret.secretName", d, secretKeys)
                    case .cloudInit(let c):
                        // KubeVirt reads `userdata` or `userData`, `networkdata` or `networkData`.
                        var data: [String: [UInt8]] = [:]
                        for (secret, field, spellings, key) in [(c.userDataSecret, "secretRef", ["userdata", "userData"], "userdata"),
                                                                (c.networkDataSecret, "networkDataSecretRef", ["networkdata", "networkData"], "networkdata")] {
                            guard let secret, let entries = keys("Secret", secret, "volumes.cloudInit.\(field).name", d, secretKeys) else { continue }
                            guard let bytes = spellings.lazy.compactMap({ entries[$0] }).first else {
                                diags.append(Diagnostic(.error, at: d.location ?? vm.metadata.location, field: "volumes.cloudInit.\(field)",
                                    "Secret \"\(secret)\" has no key \(spellings.joined(separator: " or ")); it has " + entries.keys.sorted().joined(separator: ", ")))
                                continue
                            }
                            data[key] = bytes
                        }
                        if !data.isEmpty { runnable.volumeData[d.name] = data }
                    default: break
                    }
                }
                out.append(runnable)
            }
        }
        if !diags.isEmpty { throw DiagnosticError(diags) }
        return out
    }

    /// Applying a QemuVirtualTarget alone starts one instance of the same name;
    /// a VirtualTargetInstance starts one of the target it names. Two instances
    /// of one name in one namespace would share a directory, sockets and a
    /// state row, so that is refused here, where every caller (run, render,
    /// the supervisor's apply and delete) works out its instances.
    public static func instances(from resources: [Resource]) throws(DiagnosticError) -> [RunnableTarget] {
        var diags: [Diagnostic] = []
        var targets: [String: QemuVirtualTarget] = [:]
        var maps: [String: ConfigMap] = [:]
        var instances: [VirtualTargetInstance] = []
        var pools: [VirtualTargetPool] = []
        for r in resources {
            let key = r.metadata.namespace + "/" + r.metadata.name
            switch r {
            case .target(let t): targets[key] = t
            case .configMap(let c): maps[key] = c
            case .secret: break
            // Instances and pools of a VM are `vms(from:boards:)`'s.
            case .instance(let i): if i.targetKind == "QemuVirtualTarget" { instances.append(i) }
            case .pool(let p): if p.targetKind == "QemuVirtualTarget" { pools.append(p) }
            // VMs run under their own driver, not as board instances.
            case .virtualMachine, .virtualMachineInstance, .instancetype, .preference, .machine, .machineClass, .volumeClaim: break
            }
        }
        var position: [String: Int] = [:]
        for (n, r) in resources.enumerated() { position["\(r.kind)/\(r.metadata.namespace)/\(r.metadata.name)"] = n }
        var out: [RunnableTarget] = []
        /// The resource each instance comes from: its VirtualTargetInstance, or a target running on its own.
        var origins: [String: Resource] = [:]
        func make(_ origin: Resource, _ t: QemuVirtualTarget, _ overlay: Lifecycle?) {
            let name = origin.metadata.name, ns = origin.metadata.namespace
            if let other = origins[ns + "/" + name] {
                diags.append(collision(origin, other, position))
                return
            }
            origins[ns + "/" + name] = origin
            var l = t.lifecycle
            if let o = overlay {
                l.ttlSeconds = o.ttlSeconds ?? l.ttlSeconds
                l.idleTTLSeconds = o.idleTTLSeconds ?? l.idleTTLSeconds
                l.readiness = o.readiness ?? l.readiness
                l.restartPolicy = o.restartPolicy ?? l.restartPolicy
                l.record = o.record ?? l.record
                if !o.sidecars.isEmpty { l.sidecars = o.sidecars }
                if !o.tests.isEmpty { l.tests = o.tests }
            }
            // Counting instructions is TCG's: `accel: auto` follows the host, as `run --record` does.
            if let r = l.record, r.value != .off, t.qemu.accel == .kvm {
                diags.append(Diagnostic(.error, at: r.location, field: r.path,
                    "QEMU records only under tcg (it counts instructions), and target \"\(t.metadata.name)\" sets spec.qemuConfig.accel: kvm; "
                    + "set it to tcg or auto, or remove record"))
            }
            var data: [String: [UInt8]] = [:]
            for d in t.qemu.drives {
                guard case .configMap(let mapName, let key) = d.source else { continue }
                guard let map = maps[ns + "/" + mapName] else {
                    let known = maps.values.filter { $0.metadata.namespace == ns }.map(\.metadata.name).sorted()
                    var msg = "ConfigMap \"\(mapName)\" is not among the inputs"
                    msg += known.isEmpty ? "; " + missingMapHint(mapName, key: key, namespace: ns)
                        : "; " + Suggestion.hint(mapName, in: known)
                    diags.append(Diagnostic(.error, at: d.location, field: d.path + ".source.configMap.name", msg))
                    continue
                }
                let chosen: String
                if let key {
                    chosen = key
                } else if map.keyOrder.count == 1 {
                    chosen = map.keyOrder[0]
                } else {
                    diags.append(Diagnostic(.error, at: d.location, field: d.path + ".source.configMap.key",
                        "ConfigMap \"\(mapName)\" has \(map.keyOrder.count) keys, so key is required; valid: " + map.keyOrder.joined(separator: ", ")))
                    continue
                }
                guard let bytes = map.entries[chosen] else {
                    diags.append(Diagnostic(.error, at: d.location, field: d.path + ".source.configMap.key",
                        "ConfigMap \"\(mapName)\" has no key \"\(chosen)\"; " + Suggestion.hint(chosen, in: map.keyOrder)))
                    continue
                }
                data[d.name] = bytes
            }
            out.append(RunnableTarget(name: name, namespace: ns, target: t, lifecycle: l, configData: data))
        }
        var referenced = Set<String>()
        for i in instances {
            let key = i.metadata.namespace + "/" + i.targetName
            guard let t = targets[key] else {
                diags.append(Diagnostic(.error, at: i.metadata.location, field: "spec.targetRef.name",
                    "QemuVirtualTarget \"\(i.targetName)\" is not among the inputs; " + Suggestion.hint(i.targetName, in: targets.values.map(\.metadata.name).sorted())))
                continue
            }
            referenced.insert(key)
            make(.instance(i), t, i.lifecycle)
        }
        // A pool's target runs only as the pool's members (the supervisor makes them).
        for p in pools {
            let key = p.metadata.namespace + "/" + p.targetName
            guard let t = targets[key] else {
                diags.append(Diagnostic(.error, at: p.metadata.location, field: "spec.targetRef.name",
                    "QemuVirtualTarget \"\(p.targetName)\" is not among the inputs; " + Suggestion.hint(p.targetName, in: targets.values.map(\.metadata.name).sorted())))
                continue
            }
            // A release restores the member's snapshot (loadvm), which a recording cannot follow.
            if let r = t.lifecycle.record, r.value != .off {
                diags.append(Diagnostic(.error, at: r.location, field: r.path,
                    "target \"\(t.metadata.name)\" is VirtualTargetPool \"\(p.metadata.name)\"'s, and a pool's members are not recorded "
                    + "(a release restores a snapshot, which QEMU's record/replay cannot follow); remove record, or record it as an instance of its own"))
            }
            referenced.insert(key)
        }
        for (key, t) in targets.sorted(by: { $0.key < $1.key }) where !referenced.contains(key) {
            make(.target(t), t, nil)
        }
        // Two instances of one target share its drives: say each missing ConfigMap once.
        var said = Set<String>()
        diags = diags.filter { said.insert($0.description).inserted }
        if !diags.isEmpty { throw DiagnosticError(diags) }
        // Keep the order the user wrote them in (a dictionary: a namespace may hold thousands).
        var order: [String: Int] = [:]
        for (n, r) in resources.enumerated().reversed() { order[r.metadata.namespace + "/" + r.metadata.name] = n }  // the first wins
        return out.sorted { (order[$0.namespace + "/" + $0.name] ?? 0) < (order[$1.namespace + "/" + $1.name] ?? 0) }
    }

    /// Two resources that would both run as instance NAME, named with their
    /// files; reported at the one written later, so the earlier reads as the cause.
    static func collision(_ a: Resource, _ b: Resource, _ position: [String: Int]) -> Diagnostic {
        func at(_ r: Resource) -> Int { position["\(r.kind)/\(r.metadata.namespace)/\(r.metadata.name)"] ?? 0 }
        let (first, second) = at(a) <= at(b) ? (a, b) : (b, a)
        func describe(_ r: Resource) -> String {
            if case .instance(let i) = r {
                return "VirtualTargetInstance \"\(i.metadata.name)\" (\(i.metadata.location)), an instance of target \"\(i.targetName)\""
            }
            return "\(r.kind) \"\(r.metadata.name)\" (\(r.metadata.location)), which no instance names, so it runs as an instance of its own name"
        }
        let name = first.metadata.name
        var fix = "instance names are unique in a namespace: rename one of them or put it in another namespace"
        if [first, second].contains(where: { if case .target = $0 { return true } else { return false } }) {
            fix += ", or name target \"\(name)\" in a VirtualTargetInstance (it then runs only as that instance)"
        }
        return Diagnostic(.error, at: second.metadata.location, field: "metadata.name",
            "two instances named \"\(name)\" in namespace \(first.metadata.namespace): \(describe(second)), and \(describe(first)); \(fix)")
    }

    /// A command that makes the missing ConfigMap: for `run -f`, or stored for `apply`.
    public static func missingMapHint(_ name: String, key: String?, namespace: String) -> String {
        let ns = namespace == "default" ? "" : " -n \(namespace)"
        let from = "--from-file=" + (key.map { $0 + "=" } ?? "") + "FILE"
        return "make it with `vtarget create configmap \(name)\(ns) \(from) --dry-run=client -o yaml > \(name).yaml` and pass that with -f, "
            + "or store it for apply with `vtarget create configmap \(name)\(ns) \(from)`"
    }
}

