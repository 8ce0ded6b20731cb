import Foundation
import TestSupport
@testable import QEMULaunch
@testable import TargetSpec

/// Every file in Golden/ and the case that makes it, as libvirt's
/// qemuxmlconftest keeps them: `.argv` for plans, `.err` for refusals.
enum GoldenCases {
    /// A target planned with the given options; its argv is the golden.
    struct Plan: Sendable, CustomStringConvertible {
        var name: String
        var yaml: String
        var options = DecodeOptions()
        var launch = LaunchOptions()
        var description: String { name }
    }

    /// A target the planner refuses; the positioned error text is the golden.
    struct Refusal: Sendable, CustomStringConvertible {
        var name: String
        var yaml: String
        var host = HostFacts(architecture: .x86_64, kvmUsable: false)
        var description: String { name }
    }

    static let examples: [String] = {
        var out: [String] = []
        let e = FileManager.default.enumerator(atPath: repoRoot + "/examples")
        // VM examples (KubeVirt's, Viti's) are not board targets: the VM planner has its own goldens.
        while let f = e?.nextObject() as? String { if f.hasSuffix(".yaml") && !f.hasPrefix("kubevirt") && !f.hasPrefix("viti-") { out.append(f) } }
        return out.sorted()
    }()

    static func exampleGolden(_ file: String) -> String {
        "example-" + file.replacingOccurrences(of: "/", with: "-").replacingOccurrences(of: ".yaml", with: "")
    }

    static let hostile = targetYAML("hostile", """
        machine: q35
        memory: 100M
        smp: {cores: 2, sockets: 1, threads: 2}
        drives:
          - name: kernel
            type: kernel
            source: {file: "fw, v=1 'q\\\".elf"}
          - name: disk-a
            type: disk
            format: raw
            source: {file: "disks/a,b=c d\\n.img"}
          - name: scratch
            type: disk
            source: {emptyDisk: {capacity: 1Gi}}
          - name: iso
            type: cdrom
            source: {hostPath: {path: "/srv/x,y.iso"}}
        devices:
          - {name: console, type: serial, index: 1}
          - {name: com1, type: serial}
          - {name: bus-a, type: can, bus: vehicle, uart: 3}
          - {name: dbg, type: gdb}
        """)

    static let plans: [Plan] = [
        Plan(name: "hostile-paths", yaml: hostile, options: DecodeOptions(allowHostPaths: true)),
        // As root: images reach QEMU as fds; the pool's scratch image too.
        Plan(name: "hostile-paths-fdsets", yaml: hostile, options: DecodeOptions(allowHostPaths: true),
             launch: LaunchOptions(passImagesAsFDs: true, snapshotImage: "/run/vt/hostile/snapshot.qcow2")),
        Plan(name: "readonly-q35", yaml: targetYAML("ro", """
            machine: q35
            drives:
              - {name: ovmf-code, type: pflash, format: raw, readonly: true, source: {file: OVMF_CODE.fd}}
              - {name: base, type: disk, readonly: true, source: {file: base.qcow2}}
              - {name: data, type: disk, readonly: false, source: {file: data.img}}
              - {name: seed, type: cdrom, source: {file: seed.iso}}
            """)),
        Plan(name: "readonly-fdsets", yaml: targetYAML("ro", """
            machine: pc
            drives:
              - {name: base, type: disk, readonly: true, source: {file: base.qcow2}}
              - {name: data, type: disk, source: {file: data.img}}
            """), launch: LaunchOptions(passImagesAsFDs: true)),
        Plan(name: "flash-virt-arm", yaml: targetYAML("virt", """
            machine: virt-arm
            drives:
              - {name: efi, type: pflash, readonly: true, source: {file: QEMU_EFI.fd}}
              - {name: root, type: disk, source: {file: root.qcow2}}
            """)),
        // vexpress has no pflash0 property: a legacy flash drive with node names.
        Plan(name: "flash-vexpress-a9", yaml: targetYAML("vexpress", """
            machine: vexpress-a9
            drives:
              - {name: uboot, type: pflash, readonly: true, source: {file: u-boot.bin}}
              - {name: card, type: disk, source: {file: "sd,card.img"}}
            """)),
        Plan(name: "pool-snapshot-mps2-an385", yaml: targetYAML("pooled", """
            machine: mps2-an385
            drives: [{name: firmware, type: pflash, source: {file: fw.elf}}]
            devices: [{name: uart0, type: serial}]
            """), launch: LaunchOptions(snapshotImage: "/run/vt/pooled/snapshot.qcow2")),
        // Drive names of 63 characters: node names are cut to 31 and stay unique.
        Plan(name: "long-drive-names", yaml: targetYAML("long", """
            machine: q35
            drives:
              - {name: \(String(repeating: "a", count: 59))-one, type: disk, source: {file: one.img}}
              - {name: \(String(repeating: "a", count: 59))-two, type: disk, source: {file: two.img}}
            """)),
    ]

    static let refusals: [Refusal] = [
        Refusal(name: "err-uart-taken", yaml: targetYAML("t", """
            machine: lm3s6965evb
            devices:
              - {name: a, type: serial, index: 0}
              - {name: b, type: serial, index: 0}
            """)),
        Refusal(name: "err-uarts-exhausted", yaml: targetYAML("t", """
            machine: lm3s6965evb
            devices: [{name: a, type: serial}, {name: b, type: serial}, {name: c, type: serial}, {name: d, type: serial}]
            """)),
        Refusal(name: "err-cpu-host-without-kvm", yaml: targetYAML("t", """
            machine: q35
            cpu: host
            """)),
        Refusal(name: "err-kvm-unusable", yaml: targetYAML("t", """
            machine: pc
            accel: kvm
            """)),
        Refusal(name: "err-kvm-foreign-architecture", yaml: targetYAML("t", """
            machine: pc
            accel: kvm
            """), host: HostFacts(architecture: .aarch64, kvmUsable: true)),
        Refusal(name: "err-qcow2-as-kernel", yaml: targetYAML("t", """
            machine: pc
            drives: [{name: k, type: kernel, source: {file: vmlinuz.qcow2}}]
            """)),
        Refusal(name: "err-qcow2-as-flash-firmware", yaml: targetYAML("t", """
            machine: mps2-an385
            drives: [{name: fw, type: pflash, source: {file: fw.qcow2}}]
            """)),
        Refusal(name: "err-readonly-sd-card", yaml: targetYAML("t", """
            machine: vexpress-a9
            drives: [{name: card, type: disk, readonly: true, source: {file: card.img}}]
            """)),
    ]

    /// Every golden file name the tests may compare against.
    static let files: Set<String> = Set(examples.map { exampleGolden($0) + ".argv" } + plans.map { $0.name + ".argv" }
        + refusals.map { $0.name + ".err" })
}
