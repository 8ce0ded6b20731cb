import QEMULaunch
import VMSpec
import YAMLTree

/// VM + what the runtime resolved → the `LaunchPlan` boards use too, so the
/// sandbox, the UART hubs, the QMP proxy and the verbs serve a VM unchanged.
/// Devices are mapped as KubeVirt's virt-launcher (through libvirt) maps them.
public enum VMLaunchPlanner {
    /// The chardev of the console, `serial-console`: its FIFOs are
    /// `<instanceDirectory>/serial-console.{in,out}` and its endpoint the
    /// instance's `console.sock`, like a board UART named `console`.
    public static let consoleDevice = "console"

    public static func plan(vm: VMDefinition, host: VMHostInputs) throws(VMLaunchError) -> LaunchPlan {
        var b = VMPlanBuilder(vm: vm, host: host)
        b.build()
        if !b.badInput.isEmpty { throw VMLaunchError(.badInput, b.badInput + b.missing) }
        if !b.missing.isEmpty { throw VMLaunchError(.missingHostInput, b.missing) }
        var plan = LaunchPlan(
            targetName: vm.metadata.name, namespace: vm.metadata.namespace, binary: host.qemuBinary, arguments: b.args,
            channels: b.channels, accel: host.accel.rawValue, profile: vm.machineType, guestMemoryBytes: vm.memoryBytes,
            cpus: vm.cpu.vcpus, blockDrives: b.blockDrives, workingDirectory: host.instanceDirectory, passedFiles: b.passedFiles)
        plan.hostNetwork = !vm.interfaces.isEmpty
        plan.snapshotImage = host.snapshotImage
        for p in host.forwardedPorts { plan.forwardedPorts["\(p.guestPort)/\(p.transport.rawValue.lowercased())"] = p.hostPort }
        return plan
    }

    /// The MAC an interface gets: its own `macAddress` (nil when that is not
    /// one), else one derived from namespace, VM and interface name (stable
    /// across restarts): what status and `clone --new-mac` report.
    public static func macAddress(of interface: VMInterface, in vm: VMDefinition) -> MACAddress? {
        if let text = interface.macAddress { return MACAddress(text) }
        return .derived(namespace: vm.metadata.namespace, vm: vm.metadata.name, interface: interface.name)
    }
}
