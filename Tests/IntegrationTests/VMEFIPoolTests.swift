import Foundation
import Testing
import TestSupport
@testable import TargetRuntime

/// A pool of an EFI VM: OVMF direct-boots the busybox guest's kernel
/// (`kernelBoot`), the member is snapshotted once ready (its vars are a
/// qcow2, which `savevm` accepts) and a release restores the snapshot
/// instead of restarting the VM. One boot.
@Suite(.serialized) struct VMEFIPoolTests {
    static let image = "vtarget-test/busybox-kernel:1"

    static let yaml = """
        apiVersion: kubevirt.io/v1
        kind: VirtualMachine
        metadata: {name: efi}
        spec:
          runStrategy: Halted
          template:
            spec:
              terminationGracePeriodSeconds: 0
              domain:
                memory: {guest: 256Mi}
                devices: {}
                firmware:
                  bootloader: {efi: {secureBoot: false}}
                  kernelBoot:
                    kernelArgs: console=ttyS0
                    container:
                      image: \(image)
                      kernelPath: /boot/vmlinuz
                      initrdPath: /boot/initrd.gz
        ---
        apiVersion: kubetarget.dev/v1alpha1
        kind: VirtualTargetPool
        metadata: {name: efis}
        spec:
          targetRef: {kind: VirtualMachine, name: efi}
          minReady: 1
          maxInstances: 1
          readiness: {device: console, pattern: "vtarget-guest: ready", timeout: 600s}
        """

    @Test func anEFIMemberIsSnapshottedAndAReleaseRestoresIt() throws {
        guard let guest = VMRunTests.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let tree = f.work + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/boot", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: tree + "/boot/vmlinuz", withDestinationPath: guest + "/x86_64/vmlinuz")
        try FileManager.default.copyItem(atPath: guest + "/x86_64/initrd.gz", toPath: tree + "/boot/initrd.gz")
        var r = try f.vt(["image", "import", Self.image, tree])
        #expect(r.code == 0, "\(r.stderr)")
        let file = f.work + "/efi-pool.yaml"
        try Self.yaml.write(toFile: file, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", file])
        #expect(r.code == 0, "\(r.stderr)")

        r = try f.vt(["claim", "efis", "-o", "name", "--timeout", "600s"])
        #expect(r.code == 0, "\(r.stderr)")
        let member = r.stdout.split(separator: "/").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        #expect(member.hasPrefix("efis-"), "\(r.stdout)")
        let events = try f.vt(["events"]).stdout
        #expect(events.contains("Snapshotted") && !events.contains("does not support snapshots"), "\(events)")
        // The vars QEMU opened are the qcow2 vtarget made.
        let vars = try FileManager.default.subpathsOfDirectory(atPath: f.runtime).filter { $0.hasSuffix("efi-vars.qcow2") }
        #expect(vars.count == 1, "\(vars)")

        r = try f.vt(["release", member])
        #expect(r.code == 0 && r.stdout.contains("snapshot restored"), "\(r.stdout) \(r.stderr)")
        #expect(try f.instances().first { f.name($0) == member }.map { f.status($0)["restarts"] as? Int } == 0)

        #expect(try f.vt(["delete", "vtp", "efis"]).code == 0)
        #expect(try f.vt(["delete", "vm", "efi"]).code == 0)
        _ = try f.waitFor("no instances", seconds: 30) { $0.isEmpty }
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }
}

/// Guest memory above the host's physical memory is the user's input:
/// exit 2 at the memory field, before anything is made or started.
@Suite struct VMMemoryAboveTheHostTests {
    @Test func runOfAVMAsking64TiIsRefused() throws {
        let runtime = makeRuntimeDir()
        let file = runtime + "-vm.yaml"
        defer { for p in [runtime, file, runtime + "-state"] { try? FileManager.default.removeItem(atPath: p) } }
        try """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: huge}
            spec:
              domain:
                devices: {}
                memory:
                  guest: 64Ti
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let r = try shell("VTARGET_STATE_DIR=\(runtime)-state \(vtarget) run -f \(file) -- true", runtime: runtime)
        #expect(r.code == 2, "\(r.stdout)\(r.stderr)")
        let name = (file as NSString).lastPathComponent
        #expect(r.stderr.contains("\(name):8:14") && r.stderr.contains("spec.domain.memory.guest")
                && r.stderr.contains("64Ti is more than this host's memory") && r.stderr.contains("give at most"), "\(r.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: runtime)) ?? []).isEmpty)
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }
}

/// A board by the same rule: a user's profile that allows 64Ti (the
/// built-in ones stop at 16Gi), and a target asking for it.
@Suite struct BoardMemoryAboveTheHostTests {
    @Test func runOfABoardAsking64TiIsRefused() throws {
        let runtime = makeRuntimeDir()
        let machines = runtime + "-machines"
        let file = runtime + "-board.yaml"
        defer { for p in [runtime, machines, file, runtime + "-state"] { try? FileManager.default.removeItem(atPath: p) } }
        try FileManager.default.createDirectory(atPath: machines, withIntermediateDirectories: true)
        let q35 = try String(contentsOfFile: repoRoot + "/machines/q35.yaml", encoding: .utf8)
        try q35.replacingOccurrences(of: "name: q35", with: "name: bigq35").replacingOccurrences(of: "max: 16Gi", with: "max: 64Ti")
            .replacingOccurrences(of: "sample: x86-pc\n", with: "")
            .write(toFile: machines + "/bigq35.yaml", atomically: true, encoding: .utf8)
        try """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: big}
            spec:
              qemuConfig:
                machine: bigq35
                memory: 64Ti
                devices: [{name: com1, type: serial}]
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let r = try shell("VTARGET_MACHINES=\(machines) VTARGET_STATE_DIR=\(runtime)-state \(vtarget) run -f \(file) -- true", runtime: runtime)
        #expect(r.code == 2, "\(r.stdout)\(r.stderr)")
        let name = (file as NSString).lastPathComponent
        #expect(r.stderr.contains("\(name):7:13") && r.stderr.contains("spec.qemuConfig.memory")
                && r.stderr.contains("64Ti is more than this host's memory") && r.stderr.contains("give at most"), "\(r.stderr)")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }
}

/// The host's memory, as the probe reads it once per command.
@Suite struct HostMemoryProbeTests {
    @Test func memTotalOfMeminfo() async {
        #expect(HostProbe.memTotal("MemTotal:       16318048 kB\nMemFree:         1000 kB\n") == 16_318_048 * 1024)
        #expect(HostProbe.memTotal("MemFree:         1000 kB\nMemTotal: 2048 kB\n") == 2 << 20)
        for bad in ["", "MemFree: 1000 kB\n", "MemTotal: 12 MB\n", "MemTotal: lots kB\n", "MemTotal:\n"] {
            #expect(HostProbe.memTotal(bad) == nil, "\(bad)")
        }
        // This host's: what /proc/meminfo says, more than nothing.
        let facts = await HostProbe.facts(environment: [:], probeKVM: false)
        #expect((facts.memoryBytes ?? 0) > 64 << 20)
    }
}
