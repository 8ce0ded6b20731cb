import MachineCatalog
import YAMLTree

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

public enum Workload {
    /// Applying a QemuVirtualTarget alone starts one instance of the same name;
    /// a VirtualTargetInstance starts one of the target it names.
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
            case .instance(let i): instances.append(i)
            case .pool(let p): pools.append(p)
            }
        }
        var out: [RunnableTarget] = []
        func make(_ name: String, _ ns: String, _ t: QemuVirtualTarget, _ overlay: Lifecycle?) {
            var l = t.lifecycle
            if let o = overlay {
                l.ttlSeconds = o.ttlSeconds ?? l.ttlSeconds
                l.idleTTLSeconds = o.idleTTLSeconds ?? l.idleTTLSeconds
                l.readiness = o.readiness ?? l.readiness
                l.restartPolicy = o.restartPolicy ?? l.restartPolicy
                if !o.sidecars.isEmpty { l.sidecars = o.sidecars }
                if !o.tests.isEmpty { l.tests = o.tests }
            }
            var data: [String: [UInt8]] = [:]
            for d in t.qemu.drives {
                guard case .configMap(let mapName, let key) = d.source else { continue }
                guard let map = maps[ns + "/" + mapName] else {
                    let known = maps.values.filter { $0.metadata.namespace == ns }.map(\.metadata.name).sorted()
                    var msg = "ConfigMap \"\(mapName)\" is not among the inputs"
                    msg += known.isEmpty ? "; pass it with another -f (vtarget create configmap \(mapName) --from-file=FILE --dry-run -o yaml makes one)"
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
            make(i.metadata.name, i.metadata.namespace, t, i.lifecycle)
        }
        // A pool's target runs only as the pool's members (the supervisor makes them).
        for p in pools {
            let key = p.metadata.namespace + "/" + p.targetName
            guard targets[key] != nil else {
                diags.append(Diagnostic(.error, at: p.metadata.location, field: "spec.targetRef.name",
                    "QemuVirtualTarget \"\(p.targetName)\" is not among the inputs; " + Suggestion.hint(p.targetName, in: targets.values.map(\.metadata.name).sorted())))
                continue
            }
            referenced.insert(key)
        }
        for (key, t) in targets.sorted(by: { $0.key < $1.key }) where !referenced.contains(key) {
            make(t.metadata.name, t.metadata.namespace, t, nil)
        }
        if !diags.isEmpty { throw DiagnosticError(diags) }
        // Keep the order the user wrote them in.
        let order = resources.map { $0.metadata.namespace + "/" + $0.metadata.name }
        return out.sorted { (order.firstIndex(of: $0.namespace + "/" + $0.name) ?? 0) < (order.firstIndex(of: $1.namespace + "/" + $1.name) ?? 0) }
    }
}
