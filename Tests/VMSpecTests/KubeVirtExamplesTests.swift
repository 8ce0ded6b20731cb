import Foundation
import MachineCatalog
import TestSupport
import Testing
import TargetSpec
import VMSpec
import YAMLTree

/// Decodes files (relative to the repository) together, as one `-f a -f b` would.
func decodeVMs(_ paths: [String], allowHostPaths: Bool = false, strict: Bool = true) throws -> DecodedResources {
    let files = try paths.map { p in
        SourceFile(path: (p as NSString).lastPathComponent, directory: repoRoot,
                   bytes: Array(try Data(contentsOf: URL(fileURLWithPath: repoRoot + "/" + p))))
    }
    return try ResourceDecoder(catalog: builtInCatalog(), options: DecodeOptions(strict: strict, allowHostPaths: allowHostPaths)).decode(files)
}

func definition(_ paths: [String], allowHostPaths: Bool = false) throws -> VMDefinition {
    let r = try decodeVMs(paths, allowHostPaths: allowHostPaths)
    let defs = r.resources.compactMap(\.vmDefinition)
    try #require(defs.count == 1)
    return defs[0]
}

func kv(_ name: String) -> String { "examples/kubevirt/\(name).yaml" }

/// KubeVirt's own examples, unchanged, resolve to the VM vtarget will run.
@Suite struct KubeVirtExamplesTests {
    @Test func vmCirros() throws {
        let d = try definition([kv("vm-cirros")])
        #expect(d.api == .kubevirtVirtualMachine)
        #expect(d.runStrategy == .Halted)
        #expect(d.metadata.labels["kubevirt.io/vm"] == "vm-cirros")
        #expect(d.architecture == .amd64 && d.machineType == "q35" && d.firmware == .bios)
        #expect(d.cpu == CPUTopology(sockets: 1, cores: 1, threads: 1))
        #expect(d.memoryBytes == 128 << 20)
        #expect(d.disks.map(\.name) == ["containerdisk", "cloudinitdisk"])
        #expect(d.disks.allSatisfy { $0.kind == .disk && $0.bus == .virtio && $0.bootOrder == nil && !$0.readonly })
        #expect(d.disks[0].source == .image(reference: "registry:5000/kubevirt/cirros-container-disk-demo:devel", path: nil))
        #expect(d.disks[1].source == .cloudInit(CloudInit(flavor: .noCloud, userData: "#!/bin/sh\n\necho 'printed from cloud-init userdata'\n")))
        #expect(d.interfaces == [VMInterface(name: "default", binding: .masquerade, model: "virtio")])
        #expect(d.hostname == "vm-cirros" && d.serialConsole && d.graphics && !d.rng)
        #expect(d.terminationGracePeriodSeconds == 0)
    }

    @Test func vmiKernelBoot() throws {
        let d = try definition([kv("vmi-kernel-boot")])
        #expect(d.api == .kubevirtVirtualMachineInstance && d.runStrategy == .Once)
        #expect(d.kernelBoot == KernelBoot(image: "registry:5000/kubevirt/alpine-ext-kernel-boot-demo:devel", kernelPath: "/boot/vmlinuz-virt",
                                           initrdPath: "/boot/initramfs-virt", kernelArgs: "console=ttyS0"))
        #expect(d.memoryBytes == 1 << 30)
        #expect(d.disks.isEmpty)
    }

    @Test func vmiHostDiskNeedsAllowHostPaths() throws {
        #expect(throws: DiagnosticError.self) { try decodeVMs([kv("vmi-host-disk")]) }
        let d = try definition([kv("vmi-host-disk")], allowHostPaths: true)
        #expect(d.disks.count == 1)
        #expect(d.disks[0].source == .hostDisk(path: "/var/data/disk.img", create: true, capacityBytes: 1 << 30))
    }

    @Test func vmiMasquerade() throws {
        let d = try definition([kv("vmi-masquerade")])
        #expect(d.interfaces == [VMInterface(name: "testmasquerade", binding: .masquerade, model: "virtio", ports: [.init(name: "http", port: 80, transport: .TCP)])])
        #expect(d.rng)
        #expect(d.memoryBytes == 1_024_000_000)
        guard case .cloudInit(let ci) = d.disks[1].source else { Issue.record("no cloud-init"); return }
        #expect(ci.flavor == .noCloud)
        #expect(ci.userData?.hasPrefix("#cloud-config\npassword: fedora") == true)
        #expect(ci.networkData?.hasPrefix("version: 2\nethernets:") == true)
    }

    @Test func vmCirrosCsmallTakesTheInstancetype() throws {
        let d = try definition([kv("vm-cirros-csmall"), kv("csmall")])
        #expect(d.cpu == CPUTopology(sockets: 1, cores: 1, threads: 1))
        #expect(d.memoryBytes == 128 << 20)
        #expect(d.disks.map(\.bus) == [.virtio, .virtio])
    }

    @Test func vmCirrosCsmallAloneNamesTheMissingInstancetype() throws {
        do {
            _ = try decodeVMs([kv("vm-cirros-csmall")])
            Issue.record("accepted")
        } catch let e as DiagnosticError {
            #expect(e.errors.map(\.description) == ["vm-cirros-csmall.yaml:11:11: error: spec.instancetype.name: unknown VirtualMachineInstancetype \"csmall\"; none is defined: apply one with the VM (-f both files)"])
        }
    }

    @Test func vmiAlpineEFI() throws {
        let d = try definition([kv("vmi-alpine-efi")])
        #expect(d.firmware == .efi(secureBoot: false))
        #expect(d.machineType == "q35")
    }

    @Test func vmiFedora() throws {
        let d = try definition([kv("vmi-fedora")])
        #expect(d.interfaces == [VMInterface(name: "default")])
        #expect(d.rng)
        #expect(d.disks.map(\.name) == ["containerdisk", "cloudinitdisk"])
    }

    @Test func vmAlpineMultiPVC() throws {
        let d = try definition([kv("vm-alpine-multipvc")])
        #expect(d.disks.map(\.source) == [.volume(name: "disk-alpine", capacityBytes: nil, storageClass: nil),
                                          .volume(name: "disk-custom", capacityBytes: nil, storageClass: nil)])
    }

    @Test func vmiNoCloudEmptyDisk() throws {
        let d = try definition([kv("vmi-nocloud")])
        #expect(d.disks[2].source == .empty(capacityBytes: 2 << 30))
    }

    /// KubeVirt gives a volume without a disk a default disk (SetDefaultVolumeDisk).
    @Test func vmiSataVolumeGetsADefaultDisk() throws {
        let d = try definition([kv("vmi-sata")])
        #expect(d.disks.map(\.name) == ["containerdisk"])
        #expect(d.disks[0].kind == .disk && d.disks[0].bus == .virtio)
    }

    @Test func everyCopiedExampleDecodes() throws {
        let dir = repoRoot + "/examples/kubevirt"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 14)
        let r = try decodeVMs(files.map { "examples/kubevirt/" + $0 }, allowHostPaths: true)
        #expect(r.resources.compactMap(\.vmDefinition).count == files.count - 1)
        #expect(r.warnings.isEmpty)
    }

    @Test func instancetypeAndPreference() throws {
        let d = try definition(["examples/kubevirt-vm.yaml"])
        #expect(d.runStrategy == .Always)
        #expect(d.cpu == CPUTopology(sockets: 1, cores: 2, threads: 1))
        #expect(d.memoryBytes == 1 << 30)
        #expect(d.firmware == .efi(secureBoot: false))
        #expect(d.rng)
        #expect(d.disks.map(\.kind) == [.disk, .cdrom])
        #expect(d.disks.map(\.bus) == [.virtio, .sata])
        #expect(d.disks.map(\.readonly) == [false, true])
        #expect(d.disks[0].bootOrder == 1)
        #expect(d.interfaces[0].ports == [.init(name: "ssh", port: 22)])
    }

    @Test func arm64DefaultsToVirtAndEFI() throws {
        let text = """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: a}
            spec:
              architecture: arm64
              domain:
                memory: {guest: 256Mi}
                cpu: {cores: 2, sockets: 1, threads: 1, model: host-passthrough}
                devices:
                  autoattachGraphicsDevice: false
                  autoattachSerialConsole: false
            """
        let r = try ResourceDecoder(catalog: builtInCatalog()).decode([SourceFile(path: "a.yaml", directory: "/", bytes: Array(text.utf8))])
        let d = try #require(r.resources.first?.vmDefinition)
        #expect(d.architecture == .arm64 && d.machineType == "virt" && d.firmware == .efi(secureBoot: false))
        #expect(d.cpu == CPUTopology(sockets: 1, cores: 2, threads: 1, model: "host-passthrough"))
        #expect(!d.graphics && !d.serialConsole)
    }

    @Test func lenientTurnsClusterOnlyFieldsIntoWarnings() throws {
        let text = """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: a}
            spec:
              nodeSelector: {disk: ssd}
              domain:
                memory: {guest: 256Mi}
            """
        let file = SourceFile(path: "a.yaml", directory: "/", bytes: Array(text.utf8))
        #expect(throws: DiagnosticError.self) { try ResourceDecoder(catalog: builtInCatalog()).decode([file]) }
        let r = try ResourceDecoder(catalog: builtInCatalog(), options: DecodeOptions(strict: false)).decode([file])
        #expect(r.warnings.map(\.description) == ["a.yaml:5:17: warning: spec.nodeSelector: \"nodeSelector\" needs a cluster (it places or schedules the pod on a node); vtarget runs the VM on this machine alone; remove it"])
        #expect(r.resources.first?.vmDefinition != nil)
    }
}
