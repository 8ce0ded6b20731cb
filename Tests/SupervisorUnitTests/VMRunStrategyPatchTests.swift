import Testing
@testable import Supervisor

/// What `vtarget start` and `stop` do to a VM, by kind, runStrategy and
/// whether its instance runs: virtctl's table, and the stored VM rewritten
/// the way KubeVirt patches it.
@Suite struct VMRunStrategyPatchTests {
    typealias P = VMRunStrategyPatch

    @Test func startFollowsVirtctl() {
        #expect(P.start(kind: "VirtualMachine", strategy: "Halted", active: false, failed: false) == .patch(running: true))
        #expect(P.start(kind: "VirtualMachine", strategy: "Manual", active: false, failed: false) == .instance)
        #expect(P.start(kind: "VirtualMachine", strategy: "RerunOnFailure", active: false, failed: false) == .instance)
        #expect(P.start(kind: "VirtualMachine", strategy: "RerunOnFailure", active: false, failed: true)
                == .refuse("RerunOnFailure does not support starting VM from failed state"))
        #expect(P.start(kind: "VirtualMachine", strategy: "Always", active: false, failed: false) == .refuse("Always does not support manual start requests"))
        #expect(P.start(kind: "VirtualMachine", strategy: "Once", active: false, failed: false) == .refuse("Once does not support manual start requests"))
        for strategy in ["Halted", "Manual", "Always", "RerunOnFailure", "Once"] {
            #expect(P.start(kind: "VirtualMachine", strategy: strategy, active: true, failed: false) == .refuse("VM is already running"))
        }
        #expect(P.start(kind: "VirtualMachineInstance", strategy: "Always", active: false, failed: false) == .instance)
        #expect(P.start(kind: "Machine", strategy: "Always", active: true, failed: false) == .refuse("VM is already running"))
    }

    @Test func stopFollowsVirtctl() {
        #expect(P.stop(kind: "VirtualMachine", strategy: "Always", active: true) == .patch(running: false))
        #expect(P.stop(kind: "VirtualMachine", strategy: "Once", active: true) == .patch(running: false))
        #expect(P.stop(kind: "VirtualMachine", strategy: "Manual", active: true) == .instance)
        #expect(P.stop(kind: "VirtualMachine", strategy: "RerunOnFailure", active: true) == .instance)
        #expect(P.stop(kind: "VirtualMachine", strategy: "Manual", active: false) == .refuse("VM is not running"))
        #expect(P.stop(kind: "VirtualMachine", strategy: "Halted", active: false) == .refuse("VM is not running"))
        #expect(P.stop(kind: "Machine", strategy: "Always", active: true) == .instance)
        #expect(P.stop(kind: "VirtualMachineInstance", strategy: "Always", active: false) == .refuse("VM is not running"))
    }

    @Test func patchRewritesRunStrategyOrRunning() {
        let halted = "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: a\nspec:\n  runStrategy: Halted\n  template: {}\n"
        let started = P.patched(halted, running: true)
        #expect(started?.contains("runStrategy: Always") == true && started?.contains("Halted") == false, "\(started ?? "nil")")
        #expect(P.patched(started!, running: false)?.contains("runStrategy: Halted") == true)
        // The deprecated spelling stays the one the user wrote.
        let running = "kind: VirtualMachine\nspec:\n  running: false\n"
        let r = P.patched(running, running: true)
        #expect(r?.contains("running: true") == true && r?.contains("runStrategy") == false, "\(r ?? "nil")")
        // Neither written: runStrategy is added.
        #expect(P.patched("kind: VirtualMachine\nspec:\n  template: {}\n", running: false)?.contains("runStrategy: Halted") == true)
        #expect(P.patched("kind: VirtualMachine\n", running: true) == nil)
        #expect(P.patched("- a\n", running: true) == nil)
    }
}
