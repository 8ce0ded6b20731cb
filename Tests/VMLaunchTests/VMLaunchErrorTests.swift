import Testing
import VMLaunch
import VMLaunchCases
import VMSpec
import YAMLTree

/// Every refusal of the planner: its code, the field it names, where, and
/// what it says would be valid.
@Suite struct VMLaunchErrorTests {
    static let dir = "/run/vt/t/qemu"

    static func host(_ vm: VMDefinition, efi: Bool = true, kernel: Bool = true, ports: [VMHostInputs.ForwardedPort] = []) -> VMHostInputs {
        var disks: [String: VMHostInputs.DiskBacking] = [:]
        for d in vm.disks { disks[d.name] = VMHostInputs.DiskBacking(path: dir + "/\(d.name).qcow2", format: .qcow2) }
        return VMHostInputs(qemuBinary: "qemu-system-x86_64", accel: .tcg, disks: disks,
                            kernel: kernel ? VMHostInputs.KernelFiles(kernel: dir + "/vmlinuz", initrd: nil) : nil,
                            efi: efi ? VMHostInputs.EFIFiles(code: "/c.fd", vars: dir + "/v.fd") : nil,
                            instanceDirectory: dir, forwardedPorts: ports)
    }

    /// The planner's error for `vm`, which must be refused.
    static func refusal(_ vm: VMDefinition, _ host: VMHostInputs? = nil) -> VMLaunchError? {
        do {
            let plan = try VMLaunchPlanner.plan(vm: vm, host: host ?? Self.host(vm))
            Issue.record("planned: \(plan.argv)")
            return nil
        } catch {
            return error
        }
    }

    static func expectOne(_ e: VMLaunchError?, _ code: VMLaunchError.Code, field: String, _ fragment: String,
                          at location: YAMLTree.SourceLocation = YAMLTree.SourceLocation(file: "vm.yaml", line: 1, column: 1),
                          sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        guard let e else { return }
        #expect(e.code == code, sourceLocation: sourceLocation)
        #expect(e.diagnostics.count == 1, "\(e)", sourceLocation: sourceLocation)
        #expect(e.diagnostics.first?.field == field, "\(e)", sourceLocation: sourceLocation)
        #expect(e.diagnostics.first?.location == location, "\(e)", sourceLocation: sourceLocation)
        #expect(e.description.contains(fragment), "\(e)", sourceLocation: sourceLocation)
    }

    static func disk(_ name: String, _ kind: VMDisk.Kind = .disk, _ bus: VMDisk.Bus = .virtio, bootOrder: Int? = nil,
                     readonly: Bool = false, line: Int = 7) -> VMDisk {
        VMDisk(name: name, kind: kind, bus: bus, bootOrder: bootOrder, readonly: readonly, source: .empty(capacityBytes: 1 << 20),
               location: YAMLTree.SourceLocation(file: "vm.yaml", line: line, column: 11))
    }

    static let diskAt7 = YAMLTree.SourceLocation(file: "vm.yaml", line: 7, column: 11)

    @Test func unknownMachineType() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", machine: "microvm")), .badInput, field: "domain.machine.type",
                       "valid: q35, pc (x86_64), virt (aarch64)")
    }

    @Test func machineOfTheOtherArchitecture() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", arch: .arm64, machine: "pc-q35-7.2", firmware: .efi(secureBoot: false))),
                       .badInput, field: "domain.machine.type", "is not for arm64: use virt")
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", machine: "virt")), .badInput, field: "domain.machine.type", "use q35 or pc")
    }

    @Test func hostCPUNeedsKVM() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", cpu: CPUTopology(model: "host"))), .badInput, field: "domain.cpu.model", "needs KVM")
    }

    @Test func emptyTopologyAndTinyMemory() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", cpu: CPUTopology(sockets: 0))), .badInput, field: "domain.cpu", "1 or more")
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", memory: 4096)), .badInput, field: "domain.memory.guest", "at least 1Mi")
    }

    /// Guest memory against the host's: more than the host has is refused at
    /// the memory field, with the host's size and a valid most; up to it, or
    /// with the host's memory unknown, the VM is planned.
    @Test func memoryAboveTheHosts() throws {
        var vm = VMLaunchCases.vm("m", memory: 64 << 40)
        let at = YAMLTree.SourceLocation(file: "vm.yaml", line: 12, column: 17)
        vm.memoryLocation = at
        vm.memoryField = "spec.template.spec.domain.memory.guest"
        var host = Self.host(vm)
        host.hostMemoryBytes = 16 << 30
        Self.expectOne(Self.refusal(vm, host), .badInput, field: "spec.template.spec.domain.memory.guest",
                       "64Ti is more than this host's memory (16Gi, MemTotal in /proc/meminfo); give at most 16Gi", at: at)
        // MemTotal in kB, rarely a whole Mi: the valid most is rounded down to one.
        host.hostMemoryBytes = 16_318_048 * 1024
        Self.expectOne(Self.refusal(vm, host), .badInput, field: "spec.template.spec.domain.memory.guest",
                       "is more than this host's memory (16318048Ki, MemTotal in /proc/meminfo); give at most 15935Mi", at: at)
        for (guest, hostBytes) in [(UInt64(16 << 30), UInt64?(16 << 30)), (16 << 30 - 1, 16 << 30), (64 << 40, nil)] {
            vm.memoryBytes = guest
            host.hostMemoryBytes = hostBytes
            let plan = try VMLaunchPlanner.plan(vm: vm, host: host)
            #expect(plan.guestMemoryBytes == guest)
        }
    }

    /// Both memory checks name the field the memory came from, not the VM.
    @Test func tinyMemoryAtItsField() {
        var vm = VMLaunchCases.vm("m", memory: 4096)
        let at = YAMLTree.SourceLocation(file: "it.yaml", line: 5, column: 9)
        vm.memoryLocation = at
        vm.memoryField = "spec.memory.guest"
        Self.expectOne(Self.refusal(vm), .badInput, field: "spec.memory.guest", "at least 1Mi", at: at)
    }

    @Test func virtHasNoBIOS() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", arch: .arm64, machine: "virt")), .badInput, field: "domain.firmware.bootloader",
                       "bootloader: {efi: {secureBoot: false}}")
    }

    @Test func secureBootIsRefused() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", firmware: .efi(secureBoot: true))), .badInput,
                       field: "domain.firmware.bootloader.efi.secureBoot", "set secureBoot: false")
    }

    @Test func efiWithoutFirmwareFiles() {
        let vm = VMLaunchCases.vm("m", arch: .arm64, machine: "virt", firmware: .efi(secureBoot: false))
        Self.expectOne(Self.refusal(vm, Self.host(vm, efi: false)), .missingHostInput, field: "domain.firmware.bootloader.efi", "qemu-efi-aarch64")
    }

    @Test func kernelBootWithoutKernelOrInitrd() {
        let kb = KernelBoot(image: "k:1", kernelPath: "/vmlinuz", initrdPath: "/initrd", kernelArgs: nil)
        let vm = VMLaunchCases.vm("m", kernelBoot: kb)
        Self.expectOne(Self.refusal(vm, Self.host(vm, kernel: false)), .missingHostInput, field: "domain.firmware.kernelBoot",
                       "no kernel was extracted from k:1")
        Self.expectOne(Self.refusal(vm), .missingHostInput, field: "domain.firmware.kernelBoot.container.initrdPath", "no initrd")
    }

    @Test(arguments: [VMDisk.Bus.virtio, .usb])
    func cdromOnlyOnSATAOrSCSI(_ bus: VMDisk.Bus) {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", disks: [Self.disk("cd", .cdrom, bus)])), .badInput,
                       field: "domain.devices.disks[cd].cdrom.bus", "use sata or scsi", at: Self.diskAt7)
    }

    @Test(arguments: [VMDisk.Bus.virtio, .sata, .usb])
    func lunOnlyOnSCSI(_ bus: VMDisk.Bus) {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", disks: [Self.disk("l", .lun, bus)])), .badInput,
                       field: "domain.devices.disks[l].lun.bus", "its bus must be scsi", at: Self.diskAt7)
    }

    @Test func readOnlySATADisk() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", disks: [Self.disk("ro", .disk, .sata, readonly: true)])), .badInput,
                       field: "domain.devices.disks[ro].disk.readonly", "cannot be read-only", at: Self.diskAt7)
    }

    @Test func bootOrders() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", disks: [Self.disk("a", bootOrder: 0)])), .badInput,
                       field: "domain.devices.disks[a].bootOrder", "1 or more (got 0)", at: Self.diskAt7)
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", disks: [Self.disk("a", bootOrder: 1, line: 3), Self.disk("b", bootOrder: 1)])), .badInput,
                       field: "domain.devices.disks[b].bootOrder", "already disk \"a\"'s", at: Self.diskAt7)
    }

    @Test func tooManyIDEDevices() {
        let five = (0..<5).map { Self.disk("d\($0)", $0 == 4 ? .cdrom : .disk, .sata, line: $0 == 4 ? 7 : 3) }
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", machine: "pc", disks: five)), .badInput,
                       field: "domain.devices.disks[d4].cdrom.bus", "4 SATA/IDE slots", at: Self.diskAt7)
        #expect(throws: Never.self) { try VMLaunchPlanner.plan(vm: VMLaunchCases.vm("m", disks: Array(five.prefix(4)) + [five[4]]),
                                                               host: Self.host(VMLaunchCases.vm("m", disks: five))) }
        let seven = (0..<7).map { Self.disk("d\($0)", .disk, .sata, line: $0 == 6 ? 7 : 3) }
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", disks: seven)), .badInput,
                       field: "domain.devices.disks[d6].disk.bus", "6 SATA/IDE slots", at: Self.diskAt7)
    }

    @Test func diskWithoutAFile() {
        let vm = VMLaunchCases.vm("m", disks: [Self.disk("a")])
        var host = Self.host(vm)
        host.disks = [:]
        Self.expectOne(Self.refusal(vm, host), .missingHostInput, field: "domain.devices.disks[a]", "no file was prepared", at: Self.diskAt7)
    }

    @Test func namedNetworksComeLater() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", interfaces: [VMInterface(name: "lab0", network: "lab")])), .badInput,
                       field: "networks[lab]", "named networks are not supported yet")
    }

    @Test func unknownNICModel() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", interfaces: [VMInterface(name: "e", model: "e1001")])), .badInput,
                       field: "domain.devices.interfaces[e].model", "did you mean \"e1000\"?")
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", interfaces: [VMInterface(name: "e", model: "vmxnet3")])), .badInput,
                       field: "domain.devices.interfaces[e].model", "valid: \"e1000\", \"e1000e\", \"ne2k_pci\", \"pcnet\", \"rtl8139\", \"virtio\"")
    }

    @Test func badMACAddresses() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", interfaces: [VMInterface(name: "e", macAddress: "02:00:00:00:00")])), .badInput,
                       field: "domain.devices.interfaces[e].macAddress", "is not a MAC address")
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", interfaces: [VMInterface(name: "e", macAddress: "01:00:5e:00:00:01")])), .badInput,
                       field: "domain.devices.interfaces[e].macAddress", "multicast")
    }

    @Test func portsOutOfRangeOrWithoutAHostPort() {
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", interfaces: [VMInterface(name: "e", ports: [.init(port: 70000)])])), .badInput,
                       field: "domain.devices.interfaces[e].ports[0].port", "not between 1 and 65535")
        Self.expectOne(Self.refusal(VMLaunchCases.vm("m", interfaces: [VMInterface(name: "e", ports: [.init(port: 22), .init(name: "ssh", port: 22)])]),
                                    Self.host(VMLaunchCases.vm("m"), ports: [.init(interface: "e", guestPort: 22, hostPort: 2222)])), .badInput,
                       field: "domain.devices.interfaces[e].ports[1].port", "TCP port 22 is listed twice")
        let vm = VMLaunchCases.vm("m", interfaces: [VMInterface(name: "e", ports: [.init(port: 22), .init(port: 22, transport: .UDP)])])
        Self.expectOne(Self.refusal(vm, Self.host(vm, ports: [.init(interface: "e", guestPort: 22, hostPort: 2222)])), .missingHostInput,
                       field: "domain.devices.interfaces[e].ports[1]", "no host port was chosen for UDP 22")
    }

    /// Everything wrong is reported at once; bad input wins the code, since
    /// the user must fix it whatever the runtime resolved.
    @Test func problemsAreReportedTogether() {
        let vm = VMLaunchCases.vm("m", cpu: CPUTopology(model: "host"), disks: [Self.disk("cd", .cdrom, .usb), Self.disk("x")],
                                  interfaces: [VMInterface(name: "e", model: "nope")])
        var host = Self.host(vm)
        host.disks["x"] = nil
        let e = Self.refusal(vm, host)
        #expect(e?.code == .badInput)
        #expect(e?.diagnostics.compactMap(\.field) == ["domain.cpu.model", "domain.devices.disks[cd].cdrom.bus",
                                                        "domain.devices.interfaces[e].model", "domain.devices.disks[x]"])
        #expect(e?.description.split(separator: "\n").first?.hasPrefix("vm.yaml:1:1: error: domain.cpu.model: ") == true)
    }
}
