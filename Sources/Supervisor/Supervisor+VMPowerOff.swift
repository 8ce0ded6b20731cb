import InstanceContract
import QMP
import Sandbox
import TargetRuntime

extension Supervisor {
    /// KubeVirt's default `terminationGracePeriodSeconds` for a VMI.
    static let defaultVMGracePeriod = 180.0

    /// A VM's stop as virt-launcher's: the ACPI power button
    /// (`system_powerdown`), then up to `grace` seconds for the guest to power
    /// off by itself; the caller then ends what is left at once. `force`
    /// (virtctl `stop --force --grace-period=0`) or a grace of 0 skips the
    /// button. Called with the namespace's lock held; the wait is not.
    func pressPowerButton(_ key: String, uid: String, force: Bool, grace: Double) async -> PowerButton {
        let (namespace, name) = split(key)
        func ended(_ how: String) -> PowerButton { PowerButton(uid: uid, outcome: how, watcher: nil, grace: 0) }
        guard shims[key] != nil, let row = storedRow(namespace, name), row.phase == .running else { return ended("not running") }
        if force || grace <= 0 { return ended("forced: QEMU ended at once, no ACPI shutdown") }
        guard let qmp = try? await QMPClient.connect(path: paths.instance(namespace: namespace, name: name).qmpSocket, timeout: 2) else {
            return ended("no QMP connection for the ACPI shutdown; QEMU ended")
        }
        defer { qmp.close() }
        guard (try? await qmp.execute("system_powerdown", timeout: 5)) != nil else { return ended("system_powerdown failed; QEMU ended") }
        commit(row, event("Normal", row, "Stopping", "ACPI power button pressed (system_powerdown); the guest has \(Self.format(grace)) to power off"))
        guard let watcher = watchers[key] else { return ended("the guest powered off") }
        return PowerButton(uid: uid, outcome: nil, watcher: watcher, grace: grace)
    }
}

/// A pressed power button: the instance it was pressed for (its uid) and how
/// to learn how the guest took it.
struct PowerButton: Sendable {
    let uid: String
    /// Known at once (forced, no QMP, not running); nil: wait for `watcher`.
    let outcome: String?
    let watcher: Task<Void, Never>?
    let grace: Double

    func waitForPowerOff() async -> String {
        if let outcome { return outcome }
        guard let watcher else { return "the guest powered off" }
        if await withDeadline(grace, { await watcher.value }) != nil { return "the guest powered off" }
        return "the guest did not power off within \(Supervisor.format(grace)); QEMU ended"
    }
}
