import Foundation
import Testing
import TestSupport

/// virtctl's verbs on a supervised VM, with the busybox test guest (no
/// guest agent, no sshd): start of a Halted VM (--paused, stored as Always),
/// unpause, a screenshot, a soft-reboot by the ACPI power button, stop back
/// to Halted, a Manual VM started and stopped as it is, and the refusals
/// (already running, not running, no agent, unknown VM). Three boots in all.
@Suite(.serialized) struct VMVerbTests {
    @Test func startStopAndTheVerbsOfAVM() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        guard try f.importBusyboxGuest() else { return }
        var r: RunResult
        let file = f.work + "/vm.yaml"
        let halted = VMRunTests.vmYAML(image: "vtarget-test/busybox:1").replacingOccurrences(of: "runStrategy: Always", with: "runStrategy: Halted")
        try halted.write(toFile: file, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", file])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try f.vt(["get", "vm", "bb"]).stdout.contains("Stopped"))

        // Halted → start --paused: stored as Always, running with its CPUs stopped.
        r = try f.vt(["start", "bb", "--paused"])
        #expect(r.code == 0 && r.stdout == "virtualmachine.kubevirt.io/bb started\n", "\(r.stdout) \(r.stderr)")
        var table = try f.poll(["get", "vm", "bb"]) { $0.contains("Paused") }
        #expect(table.contains("Paused"), "\(table)")
        #expect(try f.vt(["get", "vm", "bb", "-o", "yaml"]).stdout.contains("runStrategy: Always"))
        r = try f.vt(["start", "bb"])
        #expect(r.code == 1 && r.stderr.contains("VM is already running"), "\(r.code) \(r.stderr)")

        // The display, paused or not, as a PNG.
        let png = f.work + "/screen.png"
        r = try f.vt(["vnc", "bb", "--screenshot", png])
        #expect(r.code == 0 && r.stdout.contains("virtualmachine.kubevirt.io/bb: screenshot written"), "\(r.stdout) \(r.stderr)")
        let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: png))) ?? Data())
        #expect(bytes.count > 33 && Array(bytes[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] && Array(bytes[12..<16]) == Array("IHDR".utf8),
                "not a PNG: \(bytes.prefix(16))")
        if bytes.count > 24 {
            let width = bytes[16..<20].reduce(0) { $0 << 8 | Int($1) }, height = bytes[20..<24].reduce(0) { $0 << 8 | Int($1) }
            #expect(width >= 320 && height >= 200, "\(width)x\(height)")
        }
        r = try f.vt(["vnc", "bb"])
        #expect(r.code == 0 && r.stdout.hasSuffix("/vnc.sock\n"), "\(r.stdout) \(r.stderr)")

        r = try f.vt(["unpause", "bb"])
        #expect(r.code == 0 && r.stdout == "virtualmachine.kubevirt.io/bb resumed\n", "\(r.stdout) \(r.stderr)")
        table = try f.poll(["get", "vm", "bb"]) { $0.contains("Running") }
        #expect(table.contains("Running"), "\(table)")
        let logs = try f.poll(["logs", "bb"], seconds: 240) { $0.contains("vtarget-guest: ready") }
        #expect(logs.contains("vtarget-guest: ready"), "\(logs)")

        // No agent in this guest: guestosinfo says so; soft-reboot presses the ACPI power button,
        // and the guest, powered off, boots again in the same QEMU (libvirt's ACPI reboot).
        r = try f.vt(["guestosinfo", "bb"])
        #expect(r.code == 1 && r.stderr.contains("virtualmachine.kubevirt.io/bb: guest agent not connected"), "\(r.code) \(r.stderr)")
        let qemuBefore = qemuProcesses(mentioning: f.runtime)
        #expect(qemuBefore.count == 1, "\(qemuBefore)")
        r = try f.vt(["soft-reboot", "bb"])
        #expect(r.code == 0 && r.stdout == "virtualmachine.kubevirt.io/bb soft-rebooted (ACPI power button)\n", "\(r.code) \(r.stdout) \(r.stderr)")
        let rebooted = try f.poll(["logs", "bb"], seconds: 240) {
            $0.components(separatedBy: "vtarget-guest: ready").count == 3 && $0.contains("vtarget-guest: power button")
        }
        #expect(rebooted.components(separatedBy: "vtarget-guest: ready").count == 3, "booted twice: \(rebooted.suffix(3000))")
        if let button = rebooted.range(of: "vtarget-guest: power button") {
            #expect(rebooted[button.upperBound...].contains("vtarget-guest: booting on"), "the guest booted again after its power-off")
        } else {
            Issue.record("the guest never saw the power button: \(rebooted.suffix(3000))")
        }
        #expect(qemuProcesses(mentioning: f.runtime) == qemuBefore, "the same QEMU: the instance was never restarted")
        table = try f.poll(["get", "vm", "bb"]) { $0.contains("Running") }
        #expect(table.contains("Running"), "\(table)")
        // ssh reaches the guest's port through the forward: the HTTP server there is no sshd.
        r = try f.vt(["ssh", "root@bb", "-p", "8080", "--local-ssh-opts=-o ConnectTimeout=20 -o BatchMode=yes", "--", "true"])
        // ssh's TCP connection got through (the forward is up) and the guest's HTTP server closed it at the key exchange.
        #expect(r.code == 255 && !r.stderr.contains("Connection refused") && r.stderr.contains("kex_exchange_identification"), "\(r.code) \(r.stderr)")

        // stop: an Always VM becomes Halted, its instance goes.
        r = try f.vt(["stop", "bb"])
        #expect(r.code == 0 && r.stdout == "virtualmachine.kubevirt.io/bb stopped\n", "\(r.stdout) \(r.stderr)")
        #expect(try f.vt(["get", "vm", "bb", "-o", "yaml"]).stdout.contains("runStrategy: Halted"))
        #expect(try f.vt(["get", "vm", "bb"]).stdout.contains("Stopped"))
        #expect(try f.instances().isEmpty)
        r = try f.vt(["stop", "bb"])
        #expect(r.code == 1 && r.stderr.contains("VM is not running"), "\(r.code) \(r.stderr)")

        // Manual: apply starts nothing; start runs it as it is, stop stops it as it is.
        try halted.replacingOccurrences(of: "runStrategy: Halted", with: "runStrategy: Manual").write(toFile: file, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", file])
        #expect(r.code == 0, "\(r.stderr)")
        usleep(500_000)
        #expect(try f.instances().isEmpty)
        r = try f.vt(["start", "bb"])
        #expect(r.code == 0 && r.stdout == "virtualmachine.kubevirt.io/bb started\n", "\(r.stdout) \(r.stderr)")
        table = try f.poll(["get", "vm", "bb"]) { $0.contains("Running") }
        #expect(table.contains("Running"), "\(table)")
        #expect(try f.vt(["get", "vm", "bb", "-o", "yaml"]).stdout.contains("runStrategy: Manual"))
        r = try f.vt(["stop", "bb"])
        #expect(r.code == 0 && r.stdout == "virtualmachine.kubevirt.io/bb stopped\n", "\(r.stdout) \(r.stderr)")
        table = try f.poll(["get", "vm", "bb"]) { $0.contains("Stopped") }
        #expect(table.contains("Stopped"), "\(table)")
        #expect(try f.vt(["get", "vm", "bb", "-o", "yaml"]).stdout.contains("runStrategy: Manual"))
        #expect(try f.vt(["delete", "vm", "bb"]).code == 0)
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }

    @Test func verbsRefuseWhatIsNotThere() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        var r = try f.vt(["start", "nope"])
        #expect(r.code == 1 && r.stderr.contains("not found"), "\(r.code) \(r.stderr)")
        for verb in ["soft-reboot", "guestosinfo", "vnc"] {
            r = try f.vt([verb, "nope"])
            #expect(r.code != 0 && r.stderr.contains("nope"), "\(verb): \(r.code) \(r.stderr)")
        }
        for bad in [["ssh", "@bb"], ["ssh", "bb/x"], ["scp", "a", "b"], ["scp", "bb:/a", "cc:/b"], ["vnc", "bb", "--port", "5900"],
                    ["vnc", "bb", "--port", "70000", "--proxy-only"], ["ssh", "bb", "-p", "0"]] {
            r = try f.vt(bad)
            #expect(r.code == 2, "\(bad): \(r.code) \(r.stderr)")
        }
    }
}
