import InstanceContract
import Testing
@testable import Supervisor

/// The supervisor's decisions as pure functions: the restart policy table,
/// the reconcile diff and pool sums.
@Suite struct RestartBackoffTests {
    func decide(_ policy: String, desired: String = "running", _ phase: InstancePhase, reason: InstanceReason? = nil,
                ran: Double = 1, step: Int = 0) -> RestartBackoff.Decision? {
        RestartBackoff.decide(policy: policy, desired: desired, phase: phase, reason: reason, startedAt: 100, finishedAt: 100 + ran,
                              step: step, base: 1, cap: 60)
    }

    @Test func thePolicyTable() {
        for phase in [InstancePhase.succeeded, .failed] {
            #expect(decide("Never", phase) == nil)
            #expect(decide("Always", phase) != nil)
        }
        #expect(decide("OnFailure", .failed) != nil)
        #expect(decide("OnFailure", .succeeded) == nil)
        // Expired, stopped by request, or no longer wanted: never restarted.
        for policy in ["Always", "OnFailure"] {
            #expect(decide(policy, .expired) == nil)
            #expect(decide(policy, .failed, reason: .stopped) == nil)
            #expect(decide(policy, desired: "stopped", .failed) == nil)
        }
        #expect(decide("Sometimes", .failed) == nil)
    }

    @Test func backoffDoublesUpToTheCapAndResetsAfterALongRun() {
        let delays = (0..<9).map { decide("Always", .failed, step: $0)!.delay }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60, 60])
        #expect(decide("Always", .failed, step: 3)!.nextStep == 4)
        #expect(decide("Always", .failed, step: 1000)!.delay == 60)
        let long = decide("Always", .failed, ran: RestartBackoff.resetAfter, step: 5)!
        #expect(long.delay == 1 && long.nextStep == 1)
        #expect(decide("Always", .failed, ran: RestartBackoff.resetAfter - 0.5, step: 5)!.delay == 32)
    }
}

@Suite struct ReconcilePlanTests {
    typealias C = ReconcilePlan.Current
    typealias W = ReconcilePlan.Wanted

    @Test func newChangedUnchangedAndGone() {
        let plan = ReconcilePlan.diff(
            current: [C(name: "same", pool: nil, specHash: "1"), C(name: "changed", pool: nil, specHash: "1"),
                      C(name: "gone", pool: nil, specHash: "1")],
            wanted: [W(name: "same", specHash: "1"), W(name: "changed", specHash: "2"), W(name: "new", specHash: "1")],
            pools: [])
        #expect(plan == ReconcilePlan(remove: ["gone"], restart: ["changed"], create: ["new"]))
    }

    @Test func poolMembersGoWithTheirPoolOnly() {
        let plan = ReconcilePlan.diff(
            current: [C(name: "p-1", pool: "p", specHash: "old"), C(name: "q-1", pool: "q", specHash: "x")],
            wanted: [], pools: ["p"])
        // A member of a kept pool is the pool's business (its top-up replaces stale ones).
        #expect(plan == ReconcilePlan(remove: ["q-1"]))
    }

    @Test func aWantedNameHeldByAPoolMemberIsStillCreated() {
        let plan = ReconcilePlan.diff(current: [C(name: "x", pool: "p", specHash: "1")], wanted: [W(name: "x", specHash: "1")], pools: ["p"])
        #expect(plan == ReconcilePlan(create: ["x"]))
    }

    @Test func nothingToDo() {
        #expect(ReconcilePlan.diff(current: [], wanted: [], pools: []) == ReconcilePlan())
        #expect(ReconcilePlan.diff(current: [C(name: "a", pool: nil, specHash: "1")], wanted: [W(name: "a", specHash: "1")], pools: [])
                == ReconcilePlan())
    }
}

@Suite struct PoolArithmeticTests {
    typealias M = PoolArithmetic.Member

    func members(claimed: Int, warm: Int, cold: Int = 0, stale: Int = 0, staleClaimed: Int = 0) -> [M] {
        var out: [M] = []
        for i in 0..<claimed { out.append(M(name: "c\(i)", claimed: true, warm: true, specHash: "h")) }
        for i in 0..<warm { out.append(M(name: "w\(i)", claimed: false, warm: true, specHash: "h")) }
        for i in 0..<cold { out.append(M(name: "f\(i)", claimed: false, warm: false, specHash: "h")) }
        for i in 0..<stale { out.append(M(name: "s\(i)", claimed: false, warm: true, specHash: "old")) }
        for i in 0..<staleClaimed { out.append(M(name: "sc\(i)", claimed: true, warm: true, specHash: "old")) }
        return out
    }

    @Test func neverAboveMaxInstancesForAnyMix() {
        for minReady in 0...4 {
            for maxInstances in minReady...6 {
                for claimed in 0...maxInstances {
                    for warm in 0...(maxInstances - claimed) {
                        for cold in 0...2 {
                            let m = members(claimed: claimed, warm: warm, cold: cold)
                            let t = PoolArithmetic.topUp(members: m, specHash: "h", minReady: minReady, maxInstances: maxInstances)
                            #expect(t.remove.isEmpty)
                            #expect(t.add >= 0)
                            #expect(m.count + t.add <= max(maxInstances, m.count))
                            // Enough warm unclaimed ones, as far as the cap allows.
                            #expect(warm + t.add >= minReady || m.count + t.add >= maxInstances)
                        }
                    }
                }
            }
        }
    }

    @Test func staleUnclaimedMembersAreReplacedAndClaimedOnesKept() {
        let t = PoolArithmetic.topUp(members: members(claimed: 0, warm: 1, stale: 2, staleClaimed: 1), specHash: "h", minReady: 3, maxInstances: 4)
        #expect(t.remove == ["s0", "s1"])
        // Kept: one warm and one claimed stale member; two more fit under 4.
        #expect(t.add == 2)
    }

    @Test func aFullyClaimedPoolAddsNothing() {
        #expect(PoolArithmetic.topUp(members: members(claimed: 3, warm: 0), specHash: "h", minReady: 2, maxInstances: 3).add == 0)
    }
}

@Suite struct NamespaceLocksTests {
    /// Twenty operations that each await inside the lock: never two inside
    /// at once, and every waiter gets its turn.
    @Test func oneOperationAtATimeAcrossAwaits() async {
        actor Harness {
            var locks = NamespaceLocks()
            var inside = 0, most = 0, done = 0
            func run() async {
                if !locks.tryTake("ns") { await withCheckedContinuation { locks.enqueue("ns", $0) } }
                inside += 1
                most = max(most, inside)
                for _ in 0..<3 { await Task.yield() }
                inside -= 1
                done += 1
                locks.release("ns")?.resume()
            }
        }
        let h = Harness()
        await withTaskGroup(of: Void.self) { g in
            for _ in 0..<20 { g.addTask { await h.run() } }
        }
        #expect(await h.most == 1)
        #expect(await h.done == 20)
        // Free again afterwards; another namespace was never held.
        var locks = await h.locks
        let free = locks.tryTake("ns"), other = locks.tryTake("other"), again = locks.tryTake("ns")
        #expect(free && other && !again)
    }
}
