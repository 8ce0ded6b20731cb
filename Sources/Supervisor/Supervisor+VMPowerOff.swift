import InstanceContract
import QMP
import Sandbox
import TargetRuntime

extension Supervisor {
    /// KubeVirt's default `terminationGracePeriodSeconds` for a VMI.
    static let defaultVMGracePeriod = 180.0

    /// A VM's stop as virt-launcher's: the ACPI power button
    /// (`system_powerdown`), then up to `grace` seconds for the guest to power
    /// off by itself; the caller's `stopShim` then ends what is left at once.
    /// `force` (virtctl `stop --force --grace-period=0`) or a grace of 0 skips
    /// the button. The instance is already desired stopped, so a guest that
    /// powers off is not restarted. Returns how it ended, for the event.
    func powerOffGuest(_ key: String, force: Bool, grace: Double) async -> String {
        let (namespace, name) = split(key)
        guard shims[key] != nil, let row = storedRow(namespace, name), row.phase == .running else { return "not running" }
        if force || grace <= 0 { return "forced: QEMU ended at once, no ACPI shutdown" }
        guard let qmp = try? await QMPClient.connect(path: paths.instance(namespace: namespace, name: name).qmpSocket, timeout: 2) else {
            return "no QMP connection for the ACPI shutdown; QEMU ended"
        }
        defer { qmp.close() }
        guard (try? await qmp.execute("system_powerdown", timeout: 5)) != nil else { return "system_powerdown failed; QEMU ended" }
        commit(row, event("Normal", row, "Stopping", "ACPI power button pressed (system_powerdown); the guest has \(Self.format(grace)) to power off"))
        guard let watcher = watchers[key] else { return "the guest powered off" }
        if await withDeadline(grace, { await watcher.value }) != nil { return "the guest powered off" }
        return "the guest did not power off within \(Self.format(grace)); QEMU ended"
    }
}
