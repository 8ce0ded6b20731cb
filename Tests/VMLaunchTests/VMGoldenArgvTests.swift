import Foundation
import QEMULaunch
import TestSupport
import Testing
import VMLaunch
import VMLaunchCases
import VMSpec

let goldenDir = repoRoot + "/Tests/VMLaunchTests/Golden"

/// Compares `text` with Golden/FILE; UPDATE_GOLDEN=1 rewrites it (as QEMULaunchTests do).
func checkGolden(_ file: String, _ text: String) throws {
    let path = goldenDir + "/" + file
    if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return
    }
    let expected = try String(contentsOfFile: path, encoding: .utf8)
    #expect(text == expected, "\(file) differs from \(path); rerun with UPDATE_GOLDEN=1 after checking the change")
}

/// One argument per line, JSON-escaped so newlines stay visible: the boards' `.argv` format.
func argvText(_ plan: LaunchPlan) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    return plan.argv.map { String(decoding: try! encoder.encode($0), as: UTF8.self) }.joined(separator: "\n") + "\n"
}

func goldenPlan(_ c: VMLaunchCase) throws -> LaunchPlan {
    try VMLaunchPlanner.plan(vm: c.vm, host: c.host(directory: "/run/vt/\(c.name)/qemu"))
}

@Suite struct VMGoldenArgvTests {
    @Test(arguments: VMLaunchCases.all)
    func golden(_ c: VMLaunchCase) throws {
        try checkGolden(c.name + ".argv", argvText(goldenPlan(c)))
    }

    /// A golden no case produces would never fail again: libvirt's rule.
    @Test func everyGoldenFileHasACase() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: goldenDir).filter { !$0.hasPrefix(".") }
        #expect(Set(files) == Set(VMLaunchCases.all.map { $0.name + ".argv" }))
    }

    /// What the runtime reads besides the argv: the same channels as a board's
    /// QMP and UART, the drives by node name, the cgroup's sizes.
    @Test func planIsWhatTheRuntimeServes() throws {
        let c = VMLaunchCases.all.first { $0.name == "q35-bios-containerdisk-cloudinit" }!
        let p = try goldenPlan(c)
        #expect(p.channels == [
            .planned(device: "qmp", role: .qmp, transport: .socketPair(childFD: 3), chardevID: "vt-qmp"),
            .planned(device: "console", role: .serial(uart: 0), transport: .fifoPair(path: "/run/vt/\(c.name)/qemu/serial-console"),
                     chardevID: "serial-console"),
        ])
        #expect(p.childFDCount == 4)
        #expect(p.blockDrives.map(\.formatNode) == ["fmt-containerdisk", "fmt-cloudinitdisk", "fmt-scratch"])
        #expect(p.blockDrives.map(\.deviceID) == ["dev-containerdisk", "dev-cloudinitdisk", "dev-scratch"])
        #expect(p.guestMemoryBytes == 512 << 20 && p.cpus == 2 && p.accel == "tcg")
        #expect(p.workingDirectory == "/run/vt/\(c.name)/qemu")
        #expect(p.argv.contains("-S"), "the runtime starts QEMU paused and sends cont")
        #expect(p.argv.contains("user,id=net-default,net=10.0.2.0/24,hostname=cirros,hostfwd=tcp:127.0.0.1:40022-:22,hostfwd=udp:127.0.0.1:40053-:53"))
    }

    @Test func efiNodesAreDrivesToo() throws {
        let p = try goldenPlan(VMLaunchCases.all.first { $0.name == "q35-efi" }!)
        #expect(p.blockDrives.prefix(2) == [
            .planned(name: "vt.efi-code", fileNode: "file-vt.efi-code", formatNode: "fmt-vt.efi-code", deviceID: nil, readOnly: true),
            .planned(name: "vt.efi-vars", fileNode: "file-vt.efi-vars", formatNode: "fmt-vt.efi-vars", deviceID: nil, readOnly: false),
        ])
        #expect(p.argv.contains("pflash0=fmt-vt.efi-code,pflash1=fmt-vt.efi-vars"))
        #expect(p.argv.contains(#"{"driver":"raw","file":"file-vt.efi-code","node-name":"fmt-vt.efi-code","read-only":true}"#))
        #expect(p.cpus == 8)
        // qcow2 vars (as the runtime makes them), so that savevm can include them.
        #expect(p.argv.contains(#"{"driver":"qcow2","file":"file-vt.efi-vars","node-name":"fmt-vt.efi-vars"}"#))
        // Raw vars, as the template ships, get a raw node.
        let c = VMLaunchCases.all.first { $0.name == "q35-efi" }!
        var host = c.host(directory: "/d")
        host.efi?.varsFormat = .raw
        let q = try VMLaunchPlanner.plan(vm: c.vm, host: host)
        #expect(q.argv.contains(#"{"driver":"raw","file":"file-vt.efi-vars","node-name":"fmt-vt.efi-vars"}"#))
        #expect(q.argv.contains(#"{"driver":"raw","file":"file-vt.efi-code","node-name":"fmt-vt.efi-code","read-only":true}"#))
    }

    @Test func macOfAnInterfaceIsWhatThePlanUses() throws {
        let c = VMLaunchCases.all.first { $0.name == "q35-bios-containerdisk-cloudinit" }!
        let mac = try #require(VMLaunchPlanner.macAddress(of: c.vm.interfaces[0], in: c.vm))
        #expect(try goldenPlan(c).argv.contains(where: { $0.contains(#""mac":"\#(mac)""#) }))
        let pc = VMLaunchCases.all.first { $0.name == "pc-sata-ide" }!
        #expect(VMLaunchPlanner.macAddress(of: pc.vm.interfaces[0], in: pc.vm)?.description == "52:54:00:12:34:56")
        #expect(VMLaunchPlanner.macAddress(of: VMInterface(name: "x", macAddress: "nope"), in: pc.vm) == nil)
    }

    @Test func hostileNamesAreDistinctAndQEMUSafe() throws {
        let p = try goldenPlan(VMLaunchCases.all.first { $0.name == "hostile-names" }!)
        let ids = p.blockDrives.flatMap { [$0.fileNode, $0.formatNode, $0.deviceID!] }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(id.count <= 31 && id.first!.isLetter, "\(id)")
            #expect(id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }, "\(id)")
        }
        // The first takes the plain name; the one that sanitizes to it gets a hash.
        #expect(p.blockDrives[0].formatNode == "fmt-9_disk_a_b")
        #expect(p.blockDrives[1].formatNode != "fmt-9_disk_a_b")
        // Key=value options escape commas; JSON arguments do not.
        #expect(p.argv.contains("odd,, vm=1"))
        #expect(p.argv.contains(where: { $0.contains(#""serial":"S,1 \"x\"""#) }))
        #expect(p.argv.contains(where: { $0.hasPrefix("user,id=net-eth_0_x,") && $0.contains("hostfwd=tcp:127.0.0.1:40122-:22") }))
        #expect(p.argv.contains(where: { $0.hasPrefix("user,id=net-eth_0_x-") }), "the second interface keeps an id of its own")
    }

    @Test func bootOrderFallsBackToTheOrderWritten() throws {
        let p = try goldenPlan(VMLaunchCases.all.first { $0.name == "hostile-names" }!)
        let boot = p.argv.filter { $0.contains("\"bootindex\"") }.count
        #expect(boot == 4)
        let pc = try goldenPlan(VMLaunchCases.all.first { $0.name == "pc-sata-ide" }!)
        #expect(pc.argv.filter { $0.contains("\"bootindex\"") }.count == 2, "only disks with a bootOrder boot when any has one")
    }

    @Test func derivedMACsAreStableLocalUnicastAndDistinct() {
        let a = MACAddress.derived(namespace: "default", vm: "cirros", interface: "default")
        #expect(a == MACAddress.derived(namespace: "default", vm: "cirros", interface: "default"))
        #expect(a.bytes[0] == 0x02 && !a.isMulticast)
        #expect(a != MACAddress.derived(namespace: "other", vm: "cirros", interface: "default"))
        #expect(a != MACAddress.derived(namespace: "default", vm: "cirros", interface: "eth1"))
        #expect(a != MACAddress.derived(namespace: "default", vm: "cirrosdefault", interface: ""))
        #expect(MACAddress("52-54-00-AB-cd-0F")?.description == "52:54:00:ab:cd:0f")
        for bad in ["", "52:54:00:12:34", "52:54:00:12:34:5g", "525400123456", "52:54:00:12:34:567", "52:54-00:12:34:56"] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func acceleratorAndCPUModel() throws {
        func cpu(_ model: String?, _ arch: Architecture = .amd64, accel: VMHostInputs.Accel) throws -> String {
            var c = VMLaunchCases.all.first { $0.name == (arch == .amd64 ? "q35-headless" : "virt-arm64-efi") }!
            c.vm.cpu.model = model
            c.accel = accel
            let argv = try goldenPlan(c).argv
            #expect(argv.contains(where: { $0.hasSuffix("accel=\(accel.rawValue)") || $0.contains("accel=\(accel.rawValue),") }))
            return argv[argv.firstIndex(of: "-cpu")! + 1]
        }
        #expect(try cpu(nil, accel: .kvm) == "host")
        #expect(try cpu("host-passthrough", accel: .kvm) == "host")
        #expect(try cpu("host-model", accel: .tcg) == "max")
        #expect(try cpu(nil, .arm64, accel: .tcg) == "max")
        #expect(try cpu("host", accel: .kvm) == "host")
        #expect(try cpu("Skylake-Client", accel: .tcg) == "Skylake-Client")
    }
}
