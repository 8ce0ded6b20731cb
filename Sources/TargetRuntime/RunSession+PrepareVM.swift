#if canImport(Glibc)
import Glibc
#endif
import DiskImages
import HostOS
import InstanceContract
import QEMULaunch
import TargetSpec
import VMLaunch
import VMRuntime
import YAMLTree
import enum VMSpec.Architecture
import struct VMSpec.VMDefinition
import enum VMSpec.StorageClassConfig
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension RunSession {
    /// Plans every VM (its disks, seed and vars made, nothing started): the
    /// same `PreparedTarget`s boards give, so the session serves both alike.
    /// A VM's plan errors are bad input; a missing image or tool is not.
    public func prepareVMs(_ vms: [RunnableVM], runDirectory: String) async throws -> [PreparedTarget] {
        guard !vms.isEmpty else { return [] }
        let env = config.environment
        var preparation = try VMPreparation(environment: env)
        // A pool member that is snapshotted: its hostDisks on overlays (see `overlayHostDisks`).
        preparation.overlayHostDisks = config.supervised?.snapshot == true
        var out: [PreparedTarget] = []
        var problems: [Diagnostic] = []
        for r in vms {
            let layout = config.supervised?.layout ?? .run(runDirectory, namespace: r.namespace, name: r.name)
            let dir = layout.directory
            let dropping = config.sandbox && QEMUSandbox.isRoot
            let qemuDir = try QEMUSandbox.qemuDirectory(for: layout, dropping: dropping)
            if mkdir(dir, dropping ? 0o711 : 0o700) != 0 || mkdir(qemuDir, 0o700) != 0 {
                throw RuntimeError("cannot create \(qemuDir): \(String(cString: strerror(errno)))")
            }
            if dropping { chmod(dir, 0o711) }
            // The kernel first: a kernelBoot image that is missing or lacks a file is found before any disk is made.
            let kernel = try await preparation.kernelFiles(for: r.vm, in: qemuDir, materialize: true)
            var host = try await VMHostPlan.inputs(r.vm, qemuDirectory: qemuDir, disks: try await preparation.disks(for: r.vm, in: qemuDir, volumeData: r.volumeData),
                                             host: config.host, sandbox: config.sandbox, environment: env, materialize: true)
            host.kernel = kernel
            // A pool member: somewhere for `savevm vt-ready` to keep the guest's RAM.
            if config.supervised?.snapshot == true { host.snapshotImage = try await preparation.snapshotScratch(in: qemuDir) }
            if dropping { try QEMUSandbox.handOver(qemuDir) }
            do {
                let plan = try VMLaunchPlanner.plan(vm: r.vm, host: host)
                for path in layout.sockets(devices: plan.serialChannels.map(\.device)) + [host.guestAgentSocket, host.vncSocket] {
                    try RuntimeDirectory.checkSocketPath(path)
                }
                out.append((SessionInstance(r), plan, dir))
                for p in host.forwardedPorts {
                    note("\(r.name): guest port \(p.guestPort)/\(p.transport.rawValue.lowercased()) of \(p.interface) on 127.0.0.1:\(p.hostPort)")
                }
            } catch let e as VMLaunchError {
                problems += e.diagnostics
            }
        }
        if !problems.isEmpty { throw DiagnosticError(problems) }
        return out
    }
}

/// What QEMU needs of the host for one VM besides its disks: the binary,
/// the accelerator, EFI code and vars, loopback ports for its guest ports.
/// `run` makes the vars; `render` only names them.
public enum VMHostPlan {
    public static func inputs(_ vm: VMDefinition, qemuDirectory: String, disks: [String: VMHostInputs.DiskBacking], host: HostFacts,
                              sandbox: Bool, environment: [String: String], materialize: Bool) async throws -> VMHostInputs {
        var inputs = VMHostInputs(qemuBinary: "qemu-system-" + vm.architecture.qemuSuffix, accel: accel(for: vm, host: host),
                                  disks: disks, instanceDirectory: qemuDirectory, forwardedPorts: try forwardedPorts(vm), qemuSandbox: sandbox)
        inputs.passImagesAsFDs = sandbox
        inputs.hostMemoryBytes = host.memoryBytes
        if case .efi = vm.firmware {
            let files = try FirmwareFiles.find(architecture: vm.architecture, machineType: vm.machineType,
                                               directories: FirmwareFiles.defaultDirectories(environment: environment))
            let vars = qemuDirectory + "/efi-vars.qcow2"
            if materialize {
                try await files.makeVars(at: vars, qemuImg: try QemuImg(environment: environment), previous: qemuDirectory + "/efi-vars.fd",
                                         templates: TemplateCache(stateDirectory: SupervisorPaths(environment: environment).stateDirectory))
            }
            inputs.efi = VMHostInputs.EFIFiles(code: files.code, vars: vars, varsFormat: .qcow2)
        }
        return inputs
    }

    /// KVM only where the host probe proved it works and the guest is the
    /// host's own architecture; TCG otherwise (no test depends on KVM).
    static func accel(for vm: VMDefinition, host: HostFacts) -> VMHostInputs.Accel {
        let native: Bool
        switch (vm.architecture, host.architecture) {
        case (.amd64, .x86_64), (.arm64, .aarch64): native = true
        default: native = false
        }
        return native && host.kvmUsable ? .kvm : .tcg
    }

    /// A free loopback port for each guest port the VM's interfaces list,
    /// chosen now (the kernel's pick, released just before QEMU binds it).
    static func forwardedPorts(_ vm: VMDefinition) throws -> [VMHostInputs.ForwardedPort] {
        var out: [VMHostInputs.ForwardedPort] = []
        for i in vm.interfaces where i.network == nil {
            for p in i.ports {
                out.append(.init(interface: i.name, transport: p.transport, guestPort: p.port,
                                 hostPort: try LoopbackPort.free(udp: p.transport == .UDP)))
            }
        }
        return out
    }

}

extension VMPreparation {
    /// The user's store, volumes and tools, as `run`, the shims and `render` find them.
    public init(environment env: [String: String]) throws {
        let qemuImg = try QemuImg(environment: env)
        let state = SupervisorPaths(environment: env).stateDirectory
        // hostDisk was refused at decode time unless --allow-host-paths was given.
        self.init(qemuImg: qemuImg,
                  store: ImageStore(stateDirectory: state, qemuImg: qemuImg, tar: ExecutableSearch.find("tar", environment: env) ?? "/usr/bin/tar"),
                  seeds: try CloudInitSeed(environment: env), volumes: try VolumeLocations(environment: env), allowHostPaths: true)
        templates = TemplateCache(stateDirectory: state)
    }

    /// `$VTARGET_STORAGE_CLASSES`, else `~/.config/vtarget/storageclasses.yaml`
    /// (none: every volume under `<state>/volumes`). A bad file is bad input.
    static func storageClasses(environment env: [String: String]) throws -> [String: String] {
        let path = env["VTARGET_STORAGE_CLASSES"] ?? InputFiles.configDirectory(environment: env) + "/storageclasses.yaml"
        guard let data = FileManager.default.contents(atPath: path) else {
            if env["VTARGET_STORAGE_CLASSES"] != nil {
                throw RuntimeError("VTARGET_STORAGE_CLASSES: cannot read \(path)", code: .badInput)
            }
            return [:]
        }
        do throws(DiagnosticError) {
            return try StorageClassConfig.decode(Array(data), file: path)
        } catch {
            throw RuntimeError(error.description, code: .badInput)
        }
    }
}

extension VolumeLocations {
    /// The user's: `<state>/volumes` and the storage classes configured as
    /// a VM's start reads them (a bad file throws here too).
    public init(environment env: [String: String]) throws {
        self.init(root: SupervisorPaths(environment: env).stateDirectory + "/volumes",
                  classDirectories: try VMPreparation.storageClasses(environment: env))
    }

    /// The storage class a stored claim's `spec` names: a PVC's
    /// `storageClassName`, a DataVolume's under `pvc` or `storage`.
    public static func storageClass(ofClaimSpec spec: YAMLNode?) -> String? {
        (spec?[path: ["storageClassName"]] ?? spec?[path: ["pvc", "storageClassName"]] ?? spec?[path: ["storage", "storageClassName"]])?.scalar
    }
}
