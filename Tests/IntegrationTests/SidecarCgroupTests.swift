import Foundation
import Testing
import TestSupport
@testable import TargetRuntime

/// A sidecar's grandchild that calls setsid leaves the sidecar's process
/// group, so the group kill at instance end misses it. In a cgroup of its
/// own, it is killed all the same, and the group is removed.
@Suite(.serialized) struct SidecarCgroupTests {
    @Test(.enabled(if: CgroupLimits.processGroupBase().0 != nil)) func setsidGrandchildEndsWithTheInstance() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let work = "/tmp/vt-scg-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: work) }
        // A duration no other process has: how the grandchild is found.
        let marker = "1000.\(UInt32.random(in: 100_000...999_999))"
        let yaml = """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: lm3s6965evb}
            spec:
              qemuConfig:
                machine: lm3s6965evb
                drives: [{name: firmware, type: pflash, source: {configMap: {name: lm3s6965evb-firmware}}}]
                devices: [{name: uart0, type: serial}]
              readiness: {device: uart0, pattern: "echo ready", timeout: 30s}
              sidecars:
                - name: escaper
                  role: helper
                  command: [sh, -c, "(setsid sleep \(marker) </dev/null >/dev/null 2>&1 &); exec sleep 600"]
                - name: check
                  role: test
                  command: [sh, -c, "for i in $(seq 100); do pgrep -f '^sleep \(marker)' >/dev/null && exit 0; sleep 0.1; done; exit 1"]
            """
        try yaml.write(toFile: work + "/t.yaml", atomically: true, encoding: .utf8)
        // The empty group a SIGKILLed vtarget (a pid now gone) left behind is swept.
        let base = CgroupLimits.processGroupBase().0!
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let abandoned = base + "/vtarget-\(gone.processIdentifier)-lm3s6965evb-sidecar-old-0"
        #expect(mkdir(abandoned, 0o755) == 0)
        let r = try vt(["run", "-f", work + "/t.yaml", "-f", firmware + "/lm3s6965evb-firmware.yaml", "--timeout", "30s"], runtime: runtime)
        #expect(r.code == 0, "the grandchild was started and seen: \(r.stdout) \(r.stderr)")
        let left = try shell("pgrep -f '^sleep \(marker)' || true", runtime: runtime)
        let pids = left.stdout.split(whereSeparator: \.isNewline)
        for p in pids { kill(pid_t(p) ?? 0, SIGKILL) }
        #expect(pids.isEmpty, "the setsid grandchild outlived its instance: \(pids)")
        #expect(access(abandoned, F_OK) != 0, "an abandoned group stayed: \(abandoned)")
        rmdir(abandoned)
        let groups = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter { $0.contains("-sidecar-escaper-") || $0.contains("-sidecar-check-") }
        #expect(groups.isEmpty, "sidecar cgroups left behind: \(groups)")
    }
}
