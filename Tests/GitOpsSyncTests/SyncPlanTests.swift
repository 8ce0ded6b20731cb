import ControlAPI
import ResourceKit
import Testing
import YAMLTree
@testable import GitOpsSync

/// The plan alone: desired objects against stored ones, every rule.
@Suite struct SyncPlanTests {
    static let owner = "/srv/targets"

    static func yaml(_ kind: String, _ name: String, namespace: String = "default", labels: [String: String] = [:],
                     mark: String? = nil, machine: String = "lm3s6965evb") -> String {
        var root = YAMLNode.mapping([
            ("apiVersion", .string(kind == "ConfigMap" ? "v1" : "qemu.kubetarget.dev/v1alpha1")),
            ("kind", .string(kind)),
            ("metadata", .mapping([("name", .string(name)), ("namespace", .string(namespace))]
                                  + (labels.isEmpty ? [] : [("labels", .mapping(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))]))),
            ("spec", .mapping([("machine", .string(machine))])),
        ])
        if let mark { root = SyncMark.mark(root, owner: mark) }
        return YAMLEmitter.emit(root)
    }

    static func desired(_ kind: String, _ name: String, directory: String = owner, mark: Bool = true, machine: String = "lm3s6965evb",
                        namespace: String = "default", labels: [String: String] = [:]) -> AppliedResource {
        AppliedResource(kind: kind, namespace: namespace, name: name,
                        yaml: yaml(kind, name, namespace: namespace, labels: labels, mark: mark ? owner : nil, machine: machine),
                        directory: directory, options: ReadOptions())
    }

    static func live(_ kind: String, _ name: String, directory: String = owner, mark: String? = owner, machine: String = "lm3s6965evb",
                     namespace: String = "default", labels: [String: String] = [:]) -> LiveObject {
        LiveObject(kind: kind, namespace: namespace, name: name,
                   yaml: yaml(kind, name, namespace: namespace, labels: labels, mark: mark, machine: machine), directory: directory)
    }

    func actions(_ plan: SyncPlan) -> [String] { plan.steps.map { "\($0.kind)/\($0.name) \($0.action.rawValue)" } }

    @Test func newChangedAndSameObjects() {
        let plan = SyncPlan(
            desired: [Self.desired("QemuVirtualTarget", "a"), Self.desired("QemuVirtualTarget", "b", machine: "mps2-an385"),
                      Self.desired("ConfigMap", "c")],
            live: [Self.live("QemuVirtualTarget", "b"), Self.live("ConfigMap", "c")],
            prune: .managedBy(Self.owner))
        #expect(actions(plan) == ["QemuVirtualTarget/a created", "QemuVirtualTarget/b configured", "ConfigMap/c unchanged"])
        #expect(plan.apply.map(\.name) == ["a", "b"])
        #expect(plan.steps[1].reason == "the YAML differs")
        #expect(plan.changes)
    }

    @Test func nothingChangedIsNoChange() {
        let plan = SyncPlan(desired: [Self.desired("QemuVirtualTarget", "a")], live: [Self.live("QemuVirtualTarget", "a")],
                            prune: .managedBy(Self.owner))
        #expect(actions(plan) == ["QemuVirtualTarget/a unchanged"])
        #expect(plan.apply.isEmpty && !plan.changes && plan.prunes.isEmpty)
    }

    @Test func aMovedDirectoryIsAChange() {
        let plan = SyncPlan(desired: [Self.desired("QemuVirtualTarget", "a", directory: "/elsewhere")],
                            live: [Self.live("QemuVirtualTarget", "a")], prune: .none)
        #expect(actions(plan) == ["QemuVirtualTarget/a configured"])
        #expect(plan.steps[0].reason == "relative paths would start from /elsewhere, not /srv/targets")
    }

    @Test func prunesOnlyWhatThisDirectorysSyncApplied() {
        let live = [
            Self.live("QemuVirtualTarget", "mine"),
            Self.live("QemuVirtualTarget", "by-hand", mark: nil),
            Self.live("QemuVirtualTarget", "other-dir", mark: "/srv/other"),
            Self.live("QemuVirtualTarget", "kept"),
        ]
        let plan = SyncPlan(desired: [Self.desired("QemuVirtualTarget", "kept")], live: live, prune: .managedBy(Self.owner))
        #expect(actions(plan) == ["QemuVirtualTarget/kept unchanged", "QemuVirtualTarget/mine pruned"])
        #expect(plan.prunes.first?.reason == "sync applied it from /srv/targets and no file there has it now")
        #expect(plan.apply.isEmpty)
    }

    @Test func withoutPruneNothingIsDeleted() {
        let plan = SyncPlan(desired: [], live: [Self.live("QemuVirtualTarget", "mine")], prune: .none)
        #expect(plan.steps.isEmpty && !plan.changes)
    }

    @Test func prunesInDeleteOrder() {
        let live = [Self.live("ConfigMap", "fw"), Self.live("QemuVirtualTarget", "t"), Self.live("VirtualTargetPool", "p"),
                    Self.live("VirtualTargetInstance", "i")]
        let plan = SyncPlan(desired: [], live: live, prune: .managedBy(Self.owner))
        let order = plan.prunes.map(\.kind)
        #expect(Set(order) == ["ConfigMap", "QemuVirtualTarget", "VirtualTargetPool", "VirtualTargetInstance"])
        // Users before what they use: instances and pools, then targets, then ConfigMaps.
        #expect(order.firstIndex(of: "QemuVirtualTarget")! > order.firstIndex(of: "VirtualTargetPool")!)
        #expect(order.firstIndex(of: "QemuVirtualTarget")! > order.firstIndex(of: "VirtualTargetInstance")!)
        #expect(order.last == "ConfigMap")
        #expect(plan.prunesOnly.steps == plan.prunes && plan.prunesOnly.apply.isEmpty)
    }

    @Test func selectorPrunesMatchingObjectsInTheInputsNamespaces() throws {
        let selector = try LabelSelector(parsing: "team=a")
        let live = [
            Self.live("QemuVirtualTarget", "stale", mark: nil, labels: ["team": "a"]),
            Self.live("QemuVirtualTarget", "other-team", mark: nil, labels: ["team": "b"]),
            Self.live("QemuVirtualTarget", "no-labels", mark: nil),
            Self.live("QemuVirtualTarget", "other-ns", mark: nil, namespace: "lab", labels: ["team": "a"]),
            Self.live("QemuVirtualTarget", "kept", mark: nil, labels: ["team": "a"]),
        ]
        let plan = SyncPlan(desired: [Self.desired("QemuVirtualTarget", "kept", mark: false, labels: ["team": "a"])], live: live,
                            prune: .selector(selector, namespaces: ["default"]))
        #expect(actions(plan) == ["QemuVirtualTarget/kept unchanged", "QemuVirtualTarget/stale pruned"])
        #expect(plan.prunes.first?.reason == "its labels match team=a and the input does not have it")
    }

    @Test func liveObjectsReadLabelsAndAnnotations() {
        let l = Self.live("QemuVirtualTarget", "a", labels: ["x": "1"])
        #expect(l.labels == ["x": "1"])
        #expect(l.annotations == [SyncMark.annotation: Self.owner])
        let broken = LiveObject(kind: "ConfigMap", namespace: "default", name: "b", yaml: "{{{", directory: "/")
        #expect(broken.labels.isEmpty && broken.annotations.isEmpty)
        // Unparseable stored text carries no mark: never pruned.
        #expect(SyncPlan(desired: [], live: [broken], prune: .managedBy(Self.owner)).steps.isEmpty)
    }
}

@Suite struct SyncMarkTests {
    func marked(_ text: String) throws -> String {
        let root = try #require(try YAMLParser.parse(text, file: "t.yaml").first?.root)
        return YAMLEmitter.emit(SyncMark.mark(root, owner: "/d"))
    }

    @Test func addsAnnotationsAfterTheOtherMetadata() throws {
        let out = try marked("kind: ConfigMap\nmetadata:\n  name: a\n  labels: {x: y}\ndata: {k: v}\n")
        let root = try #require(try YAMLParser.parse(out, file: "out").first?.root)
        #expect(root[path: ["metadata", "annotations"]]?.stringEntries == [SyncMark.annotation: "/d"])
        #expect(root[path: ["metadata", "labels"]]?.stringEntries == ["x": "y"])
        // The other keys keep their places: the annotation is the last key of metadata.
        guard case .mapping(let meta) = root["metadata"]?.content else { Issue.record("no metadata"); return }
        #expect(meta.map { $0.key.scalar } == ["name", "labels", "annotations"])
    }

    @Test func keepsOtherAnnotationsAndReplacesAnOldMark() throws {
        let out = try marked("kind: ConfigMap\nmetadata:\n  name: a\n  annotations: {note: hi, \(SyncMark.annotation): /old}\n")
        let root = try #require(try YAMLParser.parse(out, file: "out").first?.root)
        #expect(root[path: ["metadata", "annotations"]]?.stringEntries == ["note": "hi", SyncMark.annotation: "/d"])
    }

    @Test func nullAnnotationsBecomeAMapping() throws {
        let out = try marked("kind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n")
        let root = try #require(try YAMLParser.parse(out, file: "out").first?.root)
        #expect(root[path: ["metadata", "annotations"]]?.stringEntries == [SyncMark.annotation: "/d"])
    }

    @Test func marksTheSameWayTwice() throws {
        let once = try marked("kind: ConfigMap\nmetadata: {name: a}\n")
        #expect(try marked(once) == once)
    }

    @Test func aDocumentWithoutMetadataIsLeftAlone() throws {
        #expect(try marked("kind: ConfigMap\n") == "kind: ConfigMap\n")
    }
}

@Suite struct ObjectDiffTests {
    @Test func onlyObjectsApplyWouldChange() {
        let desired = [SyncPlanTests.desired("QemuVirtualTarget", "same"), SyncPlanTests.desired("QemuVirtualTarget", "changed", machine: "b"),
                       SyncPlanTests.desired("ConfigMap", "new")]
        let live = [SyncPlanTests.live("QemuVirtualTarget", "same"), SyncPlanTests.live("QemuVirtualTarget", "changed", machine: "a")]
        let diffs = ObjectDiff.changes(desired: desired, live: live)
        #expect(diffs.map(\.name) == ["changed", "new"])
        #expect(diffs[0].old.contains("machine: a") && diffs[0].new.contains("machine: b"))
        #expect(diffs[1].old.isEmpty && diffs[1].new.contains("name: new"))
        #expect(diffs[0].oldLabel == "live/QemuVirtualTarget/default/changed" && diffs[0].newLabel == "merged/QemuVirtualTarget/default/changed")
    }

    @Test func normalisesBothSidesAlike() {
        // The same object written in flow style and in block style: no difference.
        var d = SyncPlanTests.desired("ConfigMap", "a", mark: false)
        d.yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
        let l = LiveObject(kind: "ConfigMap", namespace: "default", name: "a", yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n", directory: d.directory)
        let diffs = ObjectDiff.changes(desired: [d], live: [l])
        #expect(diffs.count == 1, "the supervisor compares text, so apply would store it anew")
        #expect(diffs.first.map { $0.new == $0.old + "# (stored text differs only in formatting: apply stores it again)\n" } == true)
    }

    @Test func aMovedDirectoryShowsAsALine() {
        let diffs = ObjectDiff.changes(desired: [SyncPlanTests.desired("QemuVirtualTarget", "a", directory: "/new")],
                                       live: [SyncPlanTests.live("QemuVirtualTarget", "a", directory: "/old")])
        #expect(diffs.first?.old.hasPrefix("# relative paths from: /old\n") == true)
        #expect(diffs.first?.new.hasPrefix("# relative paths from: /new\n") == true)
    }

    @Test func unifiedDiffRunsTheRealTool() async throws {
        let d = ObjectDiff(kind: "ConfigMap", namespace: "default", name: "a", old: "a: 1\nb: 2\n", new: "a: 1\nb: 3\n")
        let out = try await UnifiedDiff().run(d)
        #expect(out == "--- live/ConfigMap/default/a\n+++ merged/ConfigMap/default/a\n@@ -1,2 +1,2 @@\n a: 1\n-b: 2\n+b: 3\n")
        #expect(try await UnifiedDiff().run(ObjectDiff(kind: "ConfigMap", namespace: "default", name: "a", old: "x\n", new: "x\n")) == "")
    }

    @Test func aMissingDiffToolIsAnError() async {
        await #expect(throws: SyncError.self) {
            _ = try await UnifiedDiff(executable: "/nonexistent/diff").run(ObjectDiff(kind: "k", namespace: "n", name: "a", old: "", new: "x"))
        }
    }
}
