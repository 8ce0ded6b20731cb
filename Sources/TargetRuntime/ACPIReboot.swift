import Endpoints
import QMP
import Synchronization

/// virtctl soft-reboot of a guest with no agent, done as libvirt does it for
/// KubeVirt (its "fake reboot"): QEMU is told to pause, not exit, when the
/// guest powers off; the ACPI power button is pressed; at the guest's
/// SHUTDOWN, a reset and `cont` boot it again. QEMU's owner does this, not
/// the verb's process, so a verb that exits or dies leaves no half-done
/// reboot, and the instance never ends: its runStrategy, TTL, endpoints and
/// clients see one instance throughout. As in libvirt, a power-off asked for
/// while the reboot waits (`system_powerdown`, a `stop`) cancels the reboot,
/// and so does a guest that reboots by itself.
public final class ACPIReboot: Sendable {
    /// The QMP command the verb sends through the instance's QMP socket
    /// (QMP's naming rule for a downstream extension).
    public static let command = "__dev.vtarget_soft-reboot"

    private let qmp: QMPClient
    private let honoursPowerButton: Bool
    private let pending = Mutex(false)

    /// `honoursPowerButton`: the machine has a power button its guests act on
    /// (ACPI, or PSCI with gpio-keys on `virt`); else the command says so.
    public init(qmp: QMPClient, honoursPowerButton: Bool) {
        self.qmp = qmp
        self.honoursPowerButton = honoursPowerButton
    }

    /// For `QMPProxy`'s `local`: the reboot command, and `system_powerdown`
    /// only while a reboot waits (else it goes to QEMU untouched).
    public func localCommand(_ name: String) -> QMPProxy.LocalCommand? {
        if name == Self.command { return { [self] _ in await request() } }
        if name == "system_powerdown", pending.withLock({ $0 }) { return { [self] _ in await powerOff() } }
        return nil
    }

    /// QEMU's events, as they come: the guest's power-off ends a waiting reboot with a reset.
    public func observe(_ event: JSONValue) {
        guard let name = event["event"]?.stringValue, name == "SHUTDOWN" || name == "RESET",
              event["data"]?["guest"] == .bool(true), takePending() else { return }
        Task { [qmp] in
            if name == "SHUTDOWN" { _ = try? await qmp.execute("system_reset") }
            _ = try? await qmp.execute("set-action", arguments: Self.onShutdown("poweroff"))
            if name == "SHUTDOWN" { _ = try? await qmp.execute("cont") }
        }
    }

    private func request() async -> Result<JSONValue, QMPError> {
        guard honoursPowerButton else {
            return .failure(.command(errorClass: "GenericError", description:
                "the guest has neither a guest agent nor a power button vtarget can press (ACPI, or gpio-keys on virt); vtarget reset resets it without the guest's help"))
        }
        do throws(QMPError) {
            _ = try await qmp.execute("set-action", arguments: Self.onShutdown("pause"))
            pending.withLock { $0 = true }
            _ = try await qmp.execute("system_powerdown")
            return .success(.object([:]))
        } catch {
            if takePending() { _ = try? await qmp.execute("set-action", arguments: Self.onShutdown("poweroff")) }
            return .failure(error)
        }
    }

    private func powerOff() async -> Result<JSONValue, QMPError> {
        if takePending() { _ = try? await qmp.execute("set-action", arguments: Self.onShutdown("poweroff")) }
        do throws(QMPError) { return .success(try await qmp.execute("system_powerdown")) } catch { return .failure(error) }
    }

    private func takePending() -> Bool {
        pending.withLock { p in
            defer { p = false }
            return p
        }
    }

    private static func onShutdown(_ action: String) -> JSONValue {
        .object(["shutdown": .string(action)])
    }
}
