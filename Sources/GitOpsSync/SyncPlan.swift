import ControlAPI
import ResourceKit
import YAMLTree

/// What a sync (or `apply --prune`) would do, computed from the objects the
/// files describe and the objects the supervisor holds, and nothing else:
/// no socket, no file, so every case is a fast unit test.
public struct SyncPlan: Sendable, Equatable {
    /// kubectl's words, which the CLI prints beside each object.
    public enum Action: String, Sendable, Equatable {
        case create = "created"
        case update = "configured"
        case unchanged
        case prune = "pruned"
    }

    public struct Step: Sendable, Equatable, CustomStringConvertible {
        public var kind: String
        public var namespace: String
        public var name: String
        public var action: Action
        /// Why: shown by `sync --dry-run`, and in test failures.
        public var reason: String

        public init(kind: String, namespace: String, name: String, action: Action, reason: String) {
            self.kind = kind
            self.namespace = namespace
            self.name = name
            self.action = action
            self.reason = reason
        }

        public var description: String { "\(kind) \(namespace)/\(name) \(action.rawValue) (\(reason))" }
    }

    /// Which live objects that no file has may be deleted.
    public enum PruneRule: Sendable, Equatable {
        /// Never delete anything.
        case none
        /// Only objects whose `vtarget.dev/managed-by-sync` annotation is this
        /// value: what this directory's syncs applied, never what `apply` made.
        case managedBy(String)
        /// kubectl's `apply --prune -l`: objects in these namespaces whose labels match.
        case selector(LabelSelector, namespaces: Set<String>)
    }

    /// Every object the plan touches or leaves alone: the files' objects in
    /// their order, then the pruned ones in delete order.
    public var steps: [Step]
    /// What to send to `/v1/apply` (created and configured ones), in the files' order.
    public var apply: [AppliedResource]

    public var prunes: [Step] { steps.filter { $0.action == .prune } }

    /// The same plan less everything but its prunes (`apply --prune`, which
    /// applies the input itself).
    public var prunesOnly: SyncPlan {
        var p = self
        p.steps = prunes
        p.apply = []
        return p
    }
    public var changes: Bool { steps.contains { $0.action != .unchanged } }

    public init(desired: [AppliedResource], live: [LiveObject], prune rule: PruneRule) {
        var index: [ObjectKey: LiveObject] = [:]
        for l in live { index[l.key] = l }
        var steps: [Step] = []
        var apply: [AppliedResource] = []
        var wanted: Set<ObjectKey> = []
        for d in desired {
            let key = ObjectKey(kind: d.kind, namespace: d.namespace, name: d.name)
            wanted.insert(key)
            let step: (Action, String)
            if let l = index[key] {
                if let why = Self.difference(stored: l, wanted: d) {
                    step = (.update, why)
                } else {
                    step = (.unchanged, "the supervisor holds the same text")
                }
            } else {
                step = (.create, "the supervisor has no \(d.kind) of that name")
            }
            steps.append(Step(kind: d.kind, namespace: d.namespace, name: d.name, action: step.0, reason: step.1))
            if step.0 != .unchanged { apply.append(d) }
        }
        var prunes: [Step] = []
        for l in live where !wanted.contains(l.key) {
            switch rule {
            case .none:
                continue
            case .managedBy(let owner):
                guard l.annotations[SyncMark.annotation] == owner else { continue }
                prunes.append(Step(kind: l.kind, namespace: l.namespace, name: l.name, action: .prune,
                                   reason: "sync applied it from \(owner) and no file there has it now"))
            case .selector(let selector, let namespaces):
                guard namespaces.contains(l.namespace), selector.matches(l.labels) else { continue }
                prunes.append(Step(kind: l.kind, namespace: l.namespace, name: l.name, action: .prune,
                                   reason: "its labels match \(selector) and the input does not have it"))
            }
        }
        self.steps = steps + KindRegistry.builtIn.deleteOrder(prunes, kind: \.kind)
        self.apply = apply
    }

    /// Why the supervisor would store `wanted` anew, or nil when it would say
    /// "unchanged" (it compares the text and the directory relative paths start from).
    static func difference(stored: LiveObject, wanted: AppliedResource) -> String? {
        if stored.yaml != wanted.yaml { return "the YAML differs" }
        if stored.directory != wanted.directory {
            return "relative paths would start from \(wanted.directory), not \(stored.directory)"
        }
        return nil
    }
}

/// An object's identity in the supervisor.
public struct ObjectKey: Hashable, Sendable {
    public var kind: String
    public var namespace: String
    public var name: String

    public init(kind: String, namespace: String, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }
}

/// A stored object as the plan needs it: its text, and the labels and
/// annotations read from that text.
public struct LiveObject: Sendable, Equatable {
    public var kind: String
    public var namespace: String
    public var name: String
    public var yaml: String
    public var directory: String

    var key: ObjectKey { ObjectKey(kind: kind, namespace: namespace, name: name) }

    public init(kind: String, namespace: String, name: String, yaml: String, directory: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.yaml = yaml
        self.directory = directory
    }

    /// Parsed on demand: only objects no file has need them (a sync where
    /// nothing changed parses no stored text). Stored text was validated when
    /// applied; text that no longer parses has no labels or annotations, so
    /// no rule ever prunes it.
    public var labels: [String: String] { metadataMap("labels") }
    public var annotations: [String: String] { metadataMap("annotations") }

    private func metadataMap(_ key: String) -> [String: String] {
        let root = (try? YAMLParser.parse(yaml, file: "\(kind)/\(name)"))?.first?.root
        return root?[path: ["metadata", key]]?.stringEntries ?? [:]
    }

    public init(_ info: ResourceInfo) {
        self.init(kind: info.kind, namespace: info.namespace, name: info.name, yaml: info.yaml, directory: info.directory)
    }
}
