import ControlAPI
import NIOHTTP1
import ResourceKit

/// Makes the supervisor hold what a set of files describes, through its
/// control API only (as any client would): list, plan, apply, prune.
public struct GitOpsSync: Sendable {
    public let client: ControlClient

    public init(client: ControlClient) { self.client = client }

    /// Every stored object, in every namespace the caller may see.
    public func live() async throws(SyncError) -> [LiveObject] {
        do { return try await client.get("/v1/resources", as: [ResourceInfo].self).map(LiveObject.init) } catch { throw SyncError(error) }
    }

    public func plan(_ desired: [AppliedResource], prune rule: SyncPlan.PruneRule) async throws(SyncError) -> SyncPlan {
        SyncPlan(desired: desired, live: try await live(), prune: rule)
    }

    /// Applies the plan: everything created or changed in one request (the
    /// supervisor checks it all before storing any of it, so a refusal
    /// changes nothing), then the prunes one by one in delete order.
    /// Returns each step as it happened, the supervisor's word for applied ones.
    @discardableResult
    public func execute(_ plan: SyncPlan) async throws(SyncError) -> [SyncPlan.Step] {
        var done = plan.steps.filter { $0.action == .unchanged }
        if !plan.apply.isEmpty {
            let results: [ObjectResult]
            do { results = try await client.send(.POST, "/v1/apply", ApplyRequest(resources: plan.apply)) } catch { throw SyncError(error) }
            for r in results {
                let planned = plan.steps.first { $0.kind == r.kind && $0.namespace == r.namespace && $0.name == r.name }
                let action = SyncPlan.Action(rawValue: r.action) ?? planned?.action ?? .update
                done.append(SyncPlan.Step(kind: r.kind, namespace: r.namespace, name: r.name, action: action, reason: planned?.reason ?? ""))
            }
        }
        for p in plan.prunes {
            do {
                let _: ObjectResult = try await client.send(.DELETE, "/v1/resources/\(p.kind)/\(p.namespace)/\(p.name)")
            } catch where error.status == 404 {
                // Gone meanwhile: what the prune wanted.
            } catch {
                throw SyncError(.supervisor, "pruning \(p.kind) \(p.namespace)/\(p.name): \(error.message)")
            }
            done.append(p)
        }
        // The files' order, then prunes: how the plan listed them.
        let order = Dictionary(plan.steps.enumerated().map { (ObjectKey(kind: $0.element.kind, namespace: $0.element.namespace, name: $0.element.name), $0.offset) }) { a, _ in a }
        return done.sorted { (order[ObjectKey(kind: $0.kind, namespace: $0.namespace, name: $0.name)] ?? .max) < (order[ObjectKey(kind: $1.kind, namespace: $1.namespace, name: $1.name)] ?? .max) }
    }
}
