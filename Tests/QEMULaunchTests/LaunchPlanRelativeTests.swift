import Testing
import QEMULaunch

/// QEMU runs in its instance directory, so the paths the plan names are
/// given relative to it when they are inside it, and as they are otherwise.
@Suite struct LaunchPlanRelativeTests {
    @Test func pathsInsideTheDirectoryBecomeRelative() {
        #expect(LaunchPlan.relative("/run/x/qemu/serial-uart0.in", to: "/run/x/qemu") == "./serial-uart0.in")
        #expect(LaunchPlan.relative("/run/x/qemu/a/b.sock", to: "/run/x/qemu") == "./a/b.sock")
        #expect(LaunchPlan.relative("/run/x/qemu-other/a", to: "/run/x/qemu") == "/run/x/qemu-other/a")
        #expect(LaunchPlan.relative("/run/x/qemu/", to: "/run/x/qemu") == "/run/x/qemu/")
        #expect(LaunchPlan.relative("/run/x/qemu", to: "/run/x/qemu") == "/run/x/qemu")
        #expect(LaunchPlan.relative("/a/b", to: "") == "/a/b")
        #expect(LaunchPlan.relative("/a/é.img", to: "/a") == "./é.img")
    }
}
