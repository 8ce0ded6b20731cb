import ResourceKit
import VMLaunch
import VMSpec
import YAMLTree

/// One VM the planner is golden-tested with and the integration test starts
/// in a real QEMU: its backing files are named relative to a directory, so
/// the golden plans `/run/vt/<name>/qemu/...` and the real run a temporary
/// directory holding files made with qemu-img.
public struct VMLaunchCase: Sendable, CustomStringConvertible {
    public var name: String
    public var vm: VMDefinition
    public var accel: VMHostInputs.Accel = .tcg
    /// By disk name: the file's name in the directory and its format.
    public var files: [String: VMHostInputs.DiskBacking]
    public var ports: [VMHostInputs.ForwardedPort] = []
    /// A pool member's snapshot scratch (qcow2), by its name in the directory.
    public var snapshotImage: String?
    public var description: String { name }

    /// `efi-code.fd`, `efi-vars.qcow2`, `vmlinuz`, `initrd.img` in `directory`
    /// when the VM needs them.
    public func host(directory: String, qemuBinary: String? = nil) -> VMHostInputs {
        var disks: [String: VMHostInputs.DiskBacking] = [:]
        for (disk, file) in files { disks[disk] = VMHostInputs.DiskBacking(path: directory + "/" + file.path, format: file.format, readOnly: file.readOnly) }
        var efi: VMHostInputs.EFIFiles?
        if case .efi = vm.firmware { efi = VMHostInputs.EFIFiles(code: directory + "/efi-code.fd", vars: directory + "/efi-vars.qcow2", varsFormat: .qcow2) }
        var kernel: VMHostInputs.KernelFiles?
        if let kb = vm.kernelBoot {
            kernel = VMHostInputs.KernelFiles(kernel: directory + "/vmlinuz", initrd: kb.initrdPath == nil ? nil : directory + "/initrd.img")
        }
        var inputs = VMHostInputs(qemuBinary: qemuBinary ?? "qemu-system-" + vm.architecture.qemuSuffix, accel: accel, disks: disks,
                                  kernel: kernel, efi: efi, instanceDirectory: directory, forwardedPorts: ports)
        inputs.snapshotImage = snapshotImage.map { directory + "/" + $0 }
        return inputs
    }
}

public enum VMLaunchCases {
    static let location = SourceLocation(file: "vm.yaml", line: 1, column: 1)

    public static func vm(_ name: String, arch: Architecture = .amd64, machine: String = "q35", cpu: CPUTopology = CPUTopology(),
                          memory: UInt64 = 512 << 20, firmware: Firmware = .bios, kernelBoot: KernelBoot? = nil,
                          disks: [VMDisk] = [], interfaces: [VMInterface] = [], rng: Bool = false,
                          serialConsole: Bool = true, graphics: Bool = true, namespace: String = "default") -> VMDefinition {
        VMDefinition(metadata: ObjectMeta(name: name, namespace: namespace, labels: [:], location: location), api: .kubevirtVirtualMachine,
                     runStrategy: .Always, architecture: arch, machineType: machine, cpu: cpu, memoryBytes: memory, firmware: firmware,
                     kernelBoot: kernelBoot, disks: disks, interfaces: interfaces, rng: rng, serialConsole: serialConsole,
                     graphics: graphics, hostname: name)
    }

    static func at(_ line: Int) -> SourceLocation { SourceLocation(file: "vm.yaml", line: line, column: 9) }

    static func qcow2(_ file: String) -> VMHostInputs.DiskBacking { VMHostInputs.DiskBacking(path: file, format: .qcow2) }
    static func raw(_ file: String) -> VMHostInputs.DiskBacking { VMHostInputs.DiskBacking(path: file, format: .raw) }
    /// A seed or config ISO, as VMPreparation makes it: read-only.
    static func iso(_ file: String) -> VMHostInputs.DiskBacking { VMHostInputs.DiskBacking(path: file, format: .raw, readOnly: true) }

    public static let all: [VMLaunchCase] = [
        // KubeVirt's vm-cirros with a cloud-init seed, a scratch disk and ports forwarded.
        VMLaunchCase(name: "q35-bios-containerdisk-cloudinit", vm: vm("cirros", cpu: CPUTopology(sockets: 1, cores: 2, threads: 1), disks: [
            VMDisk(name: "containerdisk", source: .image(reference: "quay.io/kubevirt/cirros-container-disk-demo", path: nil), location: at(10)),
            VMDisk(name: "cloudinitdisk", source: .cloudInit(CloudInit(flavor: .noCloud, userData: "#cloud-config\n")), location: at(12)),
            VMDisk(name: "scratch", serial: "SCRATCH01", source: .empty(capacityBytes: 1 << 30), location: at(14)),
        ], interfaces: [VMInterface(name: "default", ports: [VMInterface.Port(name: "ssh", port: 22), VMInterface.Port(port: 53, transport: .UDP)])],
           rng: true),
            files: ["containerdisk": qcow2("disk-containerdisk.qcow2"), "cloudinitdisk": iso("cloudinit.iso"), "scratch": qcow2("disk-scratch.qcow2")],
            ports: [.init(interface: "default", guestPort: 22, hostPort: 40022), .init(interface: "default", transport: .UDP, guestPort: 53, hostPort: 40053)]),
        // i440fx: SATA disks on PIIX IDE (two buses of two), a cdrom, bootOrder.
        VMLaunchCase(name: "pc-sata-ide", vm: vm("legacy", machine: "pc-i440fx-7.2", disks: [
            VMDisk(name: "root", bus: .sata, bootOrder: 2, source: .image(reference: "debian:12", path: nil)),
            VMDisk(name: "data", bus: .sata, source: .volume(name: "data", capacityBytes: 1 << 30, storageClass: nil)),
            VMDisk(name: "install", kind: .cdrom, bus: .sata, bootOrder: 1, source: .image(reference: "debian-iso:12", path: nil)),
        ], interfaces: [VMInterface(name: "eth0", model: "e1000", macAddress: "52:54:00:12:34:56")]),
            files: ["root": qcow2("disk-root.qcow2"), "data": qcow2("volume-data.qcow2"), "install": qcow2("disk-install.qcow2")]),
        // One virtio-scsi controller for a disk, a lun and a cdrom; a read-only disk.
        VMLaunchCase(name: "q35-scsi-lun-cdrom", vm: vm("scsi", disks: [
            VMDisk(name: "root", bus: .scsi, serial: "ROOT", source: .image(reference: "alpine:3", path: "/disk/alpine.qcow2")),
            VMDisk(name: "shared", kind: .lun, bus: .scsi, source: .hostDisk(path: "/srv/shared.img", create: false, capacityBytes: nil)),
            VMDisk(name: "seed", kind: .cdrom, bus: .scsi, source: .configMap(name: "app-config")),
            VMDisk(name: "base", bus: .virtio, readonly: true, source: .hostDisk(path: "/srv/base.qcow2", create: false, capacityBytes: nil)),
        ], interfaces: [VMInterface(name: "default", binding: .bridge, model: "e1000e")], graphics: false),
            files: ["root": qcow2("disk-root.qcow2"), "shared": raw("shared.img"), "seed": iso("configmap-seed.iso"), "base": qcow2("base.qcow2")]),
        // A USB disk on qemu-xhci, a cdrom on SATA beside it.
        VMLaunchCase(name: "q35-usb", vm: vm("usb", disks: [
            VMDisk(name: "root", source: .image(reference: "alpine:3", path: nil)),
            VMDisk(name: "stick", bus: .usb, serial: "STICK", source: .empty(capacityBytes: 64 << 20)),
            VMDisk(name: "secrets", kind: .cdrom, bus: .sata, source: .secret(name: "creds")),
        ], interfaces: [VMInterface(name: "default", model: "rtl8139")]),
            files: ["root": qcow2("disk-root.qcow2"), "stick": qcow2("disk-stick.qcow2"), "secrets": iso("secret-secrets.iso")]),
        // OVMF: the code read-only and this VM's vars as pflash nodes.
        VMLaunchCase(name: "q35-efi", vm: vm("efi", cpu: CPUTopology(sockets: 2, cores: 2, threads: 2, model: "host-model"), memory: 1 << 30,
                                              firmware: .efi(secureBoot: false), disks: [
            VMDisk(name: "root", bootOrder: 1, source: .image(reference: "fedora:40", path: nil)),
        ]), files: ["root": qcow2("disk-root.qcow2")]),
        // kernelBoot: -kernel, -initrd, -append, the disk still attached.
        VMLaunchCase(name: "q35-kernelboot", vm: vm("kboot", kernelBoot: KernelBoot(
            image: "quay.io/kubevirt/alpine-ext-kernel-boot-demo", kernelPath: "/boot/vmlinuz-virt", initrdPath: "/boot/initramfs-virt",
            kernelArgs: "console=ttyS0 root=/dev/vda, quiet"), disks: [
            VMDisk(name: "root", source: .empty(capacityBytes: 1 << 30)),
        ], graphics: false), files: ["root": qcow2("disk-root.qcow2")]),
        // arm64: virt with the best GIC, -cpu max, AAVMF, virtio-gpu with USB input, a cdrom on an AHCI controller of its own.
        VMLaunchCase(name: "virt-arm64-efi", vm: vm("arm", arch: .arm64, machine: "virt", cpu: CPUTopology(cores: 2),
                                                      firmware: .efi(secureBoot: false), disks: [
            VMDisk(name: "root", source: .image(reference: "debian-arm64:12", path: nil)),
            VMDisk(name: "cloudinit", source: .cloudInit(CloudInit(flavor: .configDrive, userData: "#!/bin/sh\n"))),
            VMDisk(name: "install", kind: .cdrom, bus: .sata, source: .image(reference: "debian-arm64-iso:12", path: nil)),
        ], interfaces: [VMInterface(name: "default", ports: [VMInterface.Port(port: 80)])], rng: true),
            files: ["root": qcow2("disk-root.qcow2"), "cloudinit": iso("cloudinit.iso"), "install": raw("install.iso")],
            ports: [.init(interface: "default", guestPort: 80, hostPort: 40080)]),
        // Headless: no console FIFO, no VGA, no VNC; only QMP and the agent.
        VMLaunchCase(name: "q35-headless", vm: vm("headless", disks: [
            VMDisk(name: "root", source: .image(reference: "alpine:3", path: nil)),
        ], serialConsole: false, graphics: false), files: ["root": qcow2("disk-root.qcow2")]),
        // Names QEMU would refuse or misread: sanitized, hashed when long, distinct.
        VMLaunchCase(name: "hostile-names", vm: vm("odd, vm=1", disks: [
            VMDisk(name: "9 disk,a=b", source: .empty(capacityBytes: 1 << 20)),
            VMDisk(name: "9_disk_a_b", source: .empty(capacityBytes: 1 << 20)),
            VMDisk(name: String(repeating: "long-disk-", count: 6), source: .empty(capacityBytes: 1 << 20)),
            VMDisk(name: "q\"uote", serial: "S,1 \"x\"", source: .empty(capacityBytes: 1 << 20)),
        ], interfaces: [VMInterface(name: "eth 0,x", ports: [VMInterface.Port(port: 22)]), VMInterface(name: "eth_0_x")], namespace: "team a"),
            files: ["9 disk,a=b": qcow2("disk 1,a=b.qcow2"), "9_disk_a_b": qcow2("disk2.qcow2"),
                    String(repeating: "long-disk-", count: 6): qcow2("disk3.qcow2"), "q\"uote": qcow2("disk\"4\".qcow2")],
            ports: [.init(interface: "eth 0,x", guestPort: 22, hostPort: 40122)]),
        // A warm pool's member: its seed a read-only node, a scratch qcow2 node for savevm.
        VMLaunchCase(name: "q35-pool-member", vm: vm("member", disks: [
            VMDisk(name: "root", source: .image(reference: "vtarget-test/busybox:1", path: nil)),
            VMDisk(name: "cloudinit", source: .cloudInit(CloudInit(flavor: .noCloud, userData: "#!/bin/sh\n"))),
        ], graphics: false), files: ["root": qcow2("disk-root.qcow2"), "cloudinit": iso("cloudinit.iso")], snapshotImage: "snapshot.qcow2"),
    ]
}
