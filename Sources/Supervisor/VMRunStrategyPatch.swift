import YAMLTree

/// What `vtarget start` and `stop` do to a stored VirtualMachine, as virtctl's
/// do to one on a cluster: starting a Halted VM makes it `Always`, stopping an
/// `Always` (or `Once`) one makes it `Halted`, so the stored object says what
/// runs and a supervisor restart keeps it. A VM written with the deprecated
/// `running: true|false` keeps that spelling (KubeVirt patches `running` then).
/// Manual and RerunOnFailure VMs are started and stopped without an edit.
enum VMRunStrategyPatch {
    /// The decision for one verb on one VM; the messages are KubeVirt's.
    enum Decision: Equatable {
        /// Rewrite the stored VM so its runStrategy (or `running`) says this.
        case patch(running: Bool)
        /// Start or stop its instance, leaving the stored VM alone.
        case instance
        case refuse(String)
    }

    /// `strategy` is the VM's runStrategy as decoded (the deprecated
    /// `running` already mapped onto Always or Halted); `active`: its
    /// instance runs (or is starting); `failed`: its last run failed.
    static func start(kind: String, strategy: String, active: Bool, failed: Bool) -> Decision {
        if active { return .refuse("VM is already running") }
        guard kind == "VirtualMachine" else { return .instance }
        switch strategy {
        case "Halted": return .patch(running: true)
        case "Manual": return .instance
        case "RerunOnFailure": return failed ? .refuse("RerunOnFailure does not support starting VM from failed state") : .instance
        default: return .refuse("\(strategy) does not support manual start requests")
        }
    }

    static func stop(kind: String, strategy: String, active: Bool) -> Decision {
        guard kind == "VirtualMachine" else { return active ? .instance : .refuse("VM is not running") }
        switch strategy {
        case "Always", "Once": return .patch(running: false)
        default: return active ? .instance : .refuse("VM is not running")
        }
    }

    /// The VM's YAML with `spec.runStrategy` (or `spec.running`) set; nil
    /// when it is not a mapping with a `spec` mapping.
    static func patched(_ yaml: String, running: Bool) -> String? {
        guard var root = (try? YAMLParser.parse(yaml, file: "vm"))?.first?.root,
              case .mapping(var pairs) = root.content,
              let s = pairs.firstIndex(where: { $0.key.scalar == "spec" }),
              case .mapping(var spec) = pairs[s].value.content else { return nil }
        let at = pairs[s].value.location
        if let r = spec.firstIndex(where: { $0.key.scalar == "running" }) {
            spec[r].value = YAMLNode(.scalar(running ? "true" : "false", .plain), at: spec[r].value.location)
        } else if let r = spec.firstIndex(where: { $0.key.scalar == "runStrategy" }) {
            spec[r].value = YAMLNode(.scalar(running ? "Always" : "Halted", .plain), at: spec[r].value.location)
        } else {
            spec.insert(YAMLPair(key: YAMLNode(.scalar("runStrategy", .plain), at: at),
                                 value: YAMLNode(.scalar(running ? "Always" : "Halted", .plain), at: at)), at: 0)
        }
        pairs[s].value.content = .mapping(spec)
        root.content = .mapping(pairs)
        return YAMLEmitter.emit(root)
    }
}
