import Foundation
import Testing
import TestSupport

/// virtctl's stop on a supervised VM with the busybox guest: plain `stop`
/// presses the ACPI power button and gives the guest its
/// terminationGracePeriodSeconds (this guest's user-data stops its ACPI
/// daemon, so it never powers off and QEMU is ended after the grace period);
/// `stop --force` ends QEMU at once, with no ACPI shutdown; a stop during a
/// soft-reboot cancels the reboot. Three boots.
@Suite(.serialized) struct VMStopTests {
    @Test func stopPressesThePowerButtonAndForceDoesNot() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        guard try f.importBusyboxGuest() else { return }
        var r: RunResult
        let file = f.work + "/vm.yaml"
        let yaml = VMRunTests.vmYAML(image: "vtarget-test/busybox:1")
            .replacingOccurrences(of: "terminationGracePeriodSeconds: 0", with: "terminationGracePeriodSeconds: 10")
            .replacingOccurrences(of: "echo hello-from-user-data", with: "killall acpid; echo hello-from-user-data")
        #expect(yaml.contains("terminationGracePeriodSeconds: 10") && yaml.contains("killall acpid"))
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", file])
        #expect(r.code == 0, "\(r.stderr)")
        var logs = try f.poll(["logs", "bb"], seconds: 300) { $0.contains("vtarget-guest: ready") }
        #expect(logs.contains("vtarget-guest: ready"), "\(logs)")

        // Plain stop: the power button, the VM's 10 s, then QEMU is ended; the VM is Halted.
        // The grace period holds no lock: the namespace takes an apply while the stop waits.
        let stopping = try launch(["stop", "bb"], runtime: f.runtime, environment: f.environment)
        _ = try f.poll(["events"], seconds: 60) { $0.contains("ACPI power button pressed") }
        let cm = f.work + "/cm.yaml"
        try "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: during-stop}\ndata: {a: b}\n".write(toFile: cm, atomically: true, encoding: .utf8)
        let during = try f.vt(["apply", "-f", cm])
        #expect(during.code == 0, "\(during.stderr)")
        #expect(stopping.0.isRunning, "the apply waited for the stop's grace period")
        r = try finish(stopping)
        #expect(r.code == 0 && r.stdout == "virtualmachine.kubevirt.io/bb stopped\n", "\(r.stdout) \(r.stderr)")
        #expect(try f.vt(["delete", "-f", cm]).code == 0)
        var events = try f.vt(["events"]).stdout
        #expect(events.contains("ACPI power button pressed (system_powerdown); the guest has 10s to power off"), "\(events)")
        #expect(events.contains("stopped by request: the guest did not power off within 10s; QEMU ended"), "\(events)")
        #expect(try f.vt(["get", "vm", "bb", "-o", "yaml"]).stdout.contains("runStrategy: Halted"))
        #expect(try f.instances().isEmpty)

        // --force: no power button, QEMU ended at once.
        r = try f.vt(["start", "bb"])
        #expect(r.code == 0, "\(r.stderr)")
        logs = try f.poll(["logs", "bb"], seconds: 300) { $0.contains("vtarget-guest: ready") }
        #expect(logs.contains("vtarget-guest: ready"), "\(logs)")
        r = try f.vt(["stop", "bb", "--force", "--grace-period", "0"])
        #expect(r.code == 0 && r.stdout == "virtualmachine.kubevirt.io/bb stopped\n", "\(r.stdout) \(r.stderr)")
        events = try f.vt(["events"]).stdout
        #expect(events.contains("stopped by request: forced: QEMU ended at once, no ACPI shutdown"), "\(events)")
        #expect(events.components(separatedBy: "ACPI power button pressed").count == 2, "\(events)")
        #expect(try f.instances().isEmpty)

        // A stop while a soft-reboot waits for the guest cancels the reboot, as libvirt's does: this
        // guest takes 3 s to act on the button, so both presses are pending when it powers off, and
        // QEMU ends (the guest powered off) instead of booting it again (which would use up the grace).
        let slow = yaml.replacingOccurrences(of: "killall acpid;",
                                             with: #"printf '#!/bin/sh\nsleep 3\npoweroff -f\n' >/etc/acpi/PWRF/00000080; echo slow-button;"#)
        try slow.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try f.vt(["apply", "-f", file]).code == 0, "runStrategy: Always again: the apply starts it")
        func readyAfterSlowButton(_ log: String) -> Bool {
            log.range(of: "user-data: slow-button").map { log[$0.upperBound...].contains("vtarget-guest: ready") } ?? false
        }
        logs = try f.poll(["logs", "bb"], seconds: 300, readyAfterSlowButton)
        #expect(readyAfterSlowButton(logs), "\(logs.suffix(2000))")
        r = try f.vt(["soft-reboot", "bb"])
        #expect(r.code == 0 && r.stdout.contains("soft-rebooted (ACPI power button)"), "\(r.code) \(r.stdout) \(r.stderr)")
        r = try f.vt(["stop", "bb"])
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        events = try f.vt(["events"]).stdout
        #expect(events.contains("stopped by request: the guest powered off"), "\(events)")
        #expect(try f.instances().isEmpty)

        r = try f.vt(["stop", "bb", "--grace-period=-1"])
        #expect(r.code == 2 && r.stderr.contains("--grace-period: seconds, 0 or more (got -1)"), "\(r.code) \(r.stderr)")
        #expect(try f.vt(["delete", "-f", file]).code == 0)
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }
}
