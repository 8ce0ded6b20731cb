import Foundation
import Testing
import TestSupport

/// A KubeVirt VirtualMachine as written for a cluster, run by `vtarget run`:
/// the busybox test guest (scripts/build-test-guest.sh) imported into the
/// image store, booted from a containerDisk overlay with a NoCloud seed and a
/// forwarded port, under the sandbox. One boot checks everything.
@Suite(.serialized) struct VMRunTests {
    /// `make test` builds the guest before the tests start (`VTARGET_TEST_GUEST`).
    static let guest: String? = testGuestDirectory("VTARGET_TEST_GUEST", environment: ["VTARGET_GUEST_ARM64": "0"])

    static func vmYAML(image: String) -> String {
        """
        apiVersion: kubevirt.io/v1
        kind: VirtualMachine
        metadata: {name: bb}
        spec:
          runStrategy: Always
          template:
            spec:
              terminationGracePeriodSeconds: 0
              domain:
                cpu: {cores: 1}
                memory: {guest: 256Mi}
                devices:
                  disks:
                    - name: root
                      disk: {bus: virtio}
                    - name: cloudinit
                      disk: {bus: virtio}
                  interfaces:
                    - name: default
                      masquerade: {}
                      ports: [{port: 8080}]
              networks: [{name: default, pod: {}}]
              volumes:
                - name: root
                  containerDisk: {image: \(image)}
                - name: cloudinit
                  cloudInitNoCloud:
                    userData: |
                      #!/bin/sh
                      echo hello-from-user-data
        """
    }

    @Test func aKubeVirtVMBootsFromTheStoreWithItsSeedAndPort() throws {
        guard let guest = Self.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        let runtime = makeRuntimeDir()
        let state = runtime + "-state"
        defer {
            try? FileManager.default.removeItem(atPath: runtime)
            try? FileManager.default.removeItem(atPath: state)
            try? FileManager.default.removeItem(atPath: runtime + ".yaml")
        }
        let env = "VTARGET_STATE_DIR=\(state)"
        var r = try shell("\(env) \(vtarget) image import vtarget-test/busybox:1 \(guest)/x86_64/disk.qcow2", runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        try Self.vmYAML(image: "vtarget-test/busybox:1").write(toFile: runtime + ".yaml", atomically: true, encoding: .utf8)
        // render names the files a run would make, and makes none.
        r = try shell("cd \(repoRoot) && \(env) \(vtarget) render -f \(runtime).yaml", runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains(#"{"backing":"base-root","driver":"qcow2","file":"file-root","node-name":"fmt-root"}"#)
                && r.stdout.contains("fd=4,set=1") && r.stdout.contains("./disk1.iso"), "\(r.stdout)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: runtime)) ?? []).isEmpty)
        // The command waits for the guest's HTTP server on the forwarded port,
        // fetches a page, then powers the guest off through its console.
        let client = """
            for i in $(seq 1 240); do \
              if curl -sf -m 2 http://$VTARGET_PORT_8080_TCP/ > \(runtime).page; then break; fi; sleep 0.5; done; \
            echo fetched=$?
            """
        r = try shell("cd \(repoRoot) && \(env) timeout 300 \(vtarget) run -f \(runtime).yaml --timeout 240s -- sh -c '\(client)'", runtime: runtime)
        let console = r.stdout
        #expect(r.code == 0, "\(console)\n\(r.stderr)")
        #expect(console.contains("vtarget-guest: hostname=bb"), "\(console)")
        #expect(console.contains("hello-from-user-data") && console.contains("user-data ran exit=0"), "\(console)")
        #expect(console.contains("ip=10.0.2.15"), "\(console)")
        #expect(r.stderr.contains("bb: guest port 8080/tcp of default on 127.0.0.1:"), "\(r.stderr)")
        let page = (try? String(contentsOfFile: runtime + ".page", encoding: .utf8)) ?? ""
        #expect(!page.isEmpty, "nothing fetched through the forwarded port\n\(console)\n\(r.stderr)")
        // The store's image was never written: its digest is still its content.
        r = try shell("\(env) \(vtarget) image inspect vtarget-test/busybox:1", runtime: runtime)
        #expect(r.code == 0 && r.stdout.contains("qcow2"), "\(r.stdout)\(r.stderr)")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }

    /// virtctl's port-forward: any guest port (the VM lists none), on
    /// 127.0.0.1, for as long as the command runs, gone after it.
    @Test func portForwardReachesAnyGuestPortUntilItEnds() throws {
        guard let guest = Self.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        let runtime = makeRuntimeDir()
        let state = runtime + "-state"
        defer {
            for p in [runtime, state, runtime + ".yaml", runtime + ".pf", runtime + ".page"] { try? FileManager.default.removeItem(atPath: p) }
        }
        let env = "VTARGET_STATE_DIR=\(state)"
        var r = try shell("\(env) \(vtarget) image import vtarget-test/busybox:1 \(guest)/x86_64/disk.qcow2", runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        try Self.vmYAML(image: "vtarget-test/busybox:1").replacingOccurrences(of: "ports: [{port: 8080}]", with: "")
            .write(toFile: runtime + ".yaml", atomically: true, encoding: .utf8)
        // A script file: the client quotes, and sh -c '...' would not hold it.
        try """
            for i in $(seq 1 480); do grep -q 'http on' $VTARGET_RUNTIME_DIR/run-*/bb/logs/console.log 2>/dev/null && break; sleep 0.5; done
            \(vtarget) port-forward bb 0:8080 > \(runtime).pf 2>&1 &
            PF=$!
            for i in $(seq 1 40); do grep -q Forwarding \(runtime).pf && break; sleep 0.25; done
            P=$(sed -n 's/Forwarding from 127.0.0.1:\\([0-9]*\\) -> 8080/\\1/p' \(runtime).pf)
            curl -sf -m 5 http://127.0.0.1:$P/ > \(runtime).page; echo during=$?
            kill -INT $PF; wait $PF; echo ended=$?
            curl -sf -m 2 http://127.0.0.1:$P/ > /dev/null; echo after=$?
            """.write(toFile: runtime + ".sh", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: runtime + ".sh") }
        r = try shell("cd \(repoRoot) && \(env) timeout 300 \(vtarget) run -f \(runtime).yaml --timeout 240s -- sh \(runtime).sh", runtime: runtime)
        let forwarded = (try? String(contentsOfFile: runtime + ".pf", encoding: .utf8)) ?? ""
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(forwarded.contains("Forwarding from 127.0.0.1:") && forwarded.contains("-> 8080"), "\(forwarded)")
        #expect(r.stdout.contains("during=0"), "\(forwarded)\n\(r.stdout)")
        #expect(!((try? String(contentsOfFile: runtime + ".page", encoding: .utf8)) ?? "").isEmpty)
        #expect(r.stdout.contains("ended=0"), "Ctrl-C ends port-forward with 0: \(r.stdout)")
        #expect(r.stdout.contains("after=7"), "the forward outlived port-forward: \(r.stdout)")
    }

    @Test func portForwardRefusesWhatIsNoMapping() throws {
        let runtime = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        for bad in ["x", "0", "sctp/80", "80:0", "70000", "1:2:3"] {
            let r = try shell("\(vtarget) port-forward bb '\(bad)'", runtime: runtime)
            #expect(r.code == 2 && r.stderr.contains("expected [tcp/|udp/]LOCAL[:GUEST]"), "\(bad): \(r.code) \(r.stderr)")
        }
    }

    @Test func aMissingImageNamesTheCommandThatAddsIt() throws {
        let runtime = makeRuntimeDir()
        defer {
            try? FileManager.default.removeItem(atPath: runtime)
            try? FileManager.default.removeItem(atPath: runtime + "-state")
            try? FileManager.default.removeItem(atPath: runtime + ".yaml")
        }
        try Self.vmYAML(image: "registry.example:5000/nothere:1").write(toFile: runtime + ".yaml", atomically: true, encoding: .utf8)
        let r = try shell("cd \(repoRoot) && VTARGET_STATE_DIR=\(runtime)-state \(vtarget) run -f \(runtime).yaml --timeout 30s", runtime: runtime)
        #expect(r.code == 1, "\(r.stderr)")
        #expect(r.stderr.contains("vtarget image pull registry.example:5000/nothere:1"), "\(r.stderr)")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }
}

/// The same VM under the supervisor: `apply` runs it (runStrategy Always),
/// `get vm` shows its instance's status in KubeVirt's words, pause shows
/// Paused, delete ends it; a Halted VM is stored and not started.
@Suite(.serialized) struct VMSupervisorTests {
    @Test func applyRunsAlwaysAndKeepsHaltedStopped() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        guard try f.importBusyboxGuest() else { return }
        var r: RunResult
        let file = f.work + "/vm.yaml"
        try VMRunTests.vmYAML(image: "vtarget-test/busybox:1").write(toFile: file, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", file])
        #expect(r.code == 0, "\(r.stderr)")
        var table = ""
        for _ in 0..<600 {
            table = try f.vt(["get", "vm", "bb"]).stdout
            if table.contains("Running") && table.contains("True") { break }
            usleep(100_000)
        }
        #expect(table.contains("Running") && table.contains("True"), "\(table)")
        // The console is the instance's serial device, as a board's UART.
        var logs = ""
        for _ in 0..<600 {
            logs = try f.vt(["logs", "bb"]).stdout
            if logs.contains("vtarget-guest: ready") { break }
            usleep(100_000)
        }
        #expect(logs.contains("vtarget-guest: hostname=bb"), "\(logs)")
        #expect(try f.vt(["pause", "bb"]).code == 0)
        var paused = ""
        for _ in 0..<50 {
            paused = try f.vt(["get", "vm", "bb"]).stdout
            if paused.contains("Paused") { break }
            usleep(100_000)
        }
        #expect(paused.contains("Paused"), "\(paused)")
        #expect(try f.vt(["delete", "vm", "bb"]).code == 0)
        // Halted: stored, listed as Stopped, nothing started.
        try VMRunTests.vmYAML(image: "vtarget-test/busybox:1").replacingOccurrences(of: "runStrategy: Always", with: "runStrategy: Halted")
            .write(toFile: file, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", file])
        #expect(r.code == 0, "\(r.stderr)")
        usleep(500_000)
        let halted = try f.vt(["get", "vm", "bb"]).stdout
        #expect(halted.contains("Stopped"), "\(halted)")
        #expect(try f.instances(["-A"]).isEmpty)
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }
}

/// A PersistentVolumeClaim applied beside its VM sizes the VM's volume in the
/// supervisor's shim, as it does in `run`; `get pvc` lists it Pending until
/// the VM's start makes its volume, then Bound with the volume's size; it is
/// not deleted while its VM is stored, and its volume goes with it; the
/// volume of the VM's dataVolumeTemplate goes with the VM.
@Suite(.serialized) struct VMClaimSupervisorTests {
    @Test func anAppliedClaimSizesItsVolume() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        guard try f.importBusyboxGuest() else { return }
        let file = f.work + "/vm.yaml"
        let vm = VMRunTests.vmYAML(image: "vtarget-test/busybox:1")
            .replacingOccurrences(of: "            - name: cloudinit\n              disk: {bus: virtio}",
                                  with: "            - name: cloudinit\n              disk: {bus: virtio}\n            - name: data\n              disk: {bus: virtio}")
            .replacingOccurrences(of: "      volumes:\n", with: "      volumes:\n        - {name: data, persistentVolumeClaim: {claimName: data}}\n"
                                  + "        - {name: scratch, dataVolume: {name: scratch}}\n")
            .replacingOccurrences(of: "            - name: cloudinit\n              disk: {bus: virtio}",
                                  with: "            - name: cloudinit\n              disk: {bus: virtio}\n            - name: scratch\n              disk: {bus: virtio}")
            .replacingOccurrences(of: "  runStrategy: Always\n", with: "  runStrategy: Always\n  dataVolumeTemplates:\n"
                                  + "    - metadata: {name: scratch}\n      spec: {source: {blank: {}}, storage: {resources: {requests: {storage: 4Mi}}}}\n")
        #expect(vm.contains("claimName: data") && vm.contains("- name: data\n") && vm.contains("dataVolumeTemplates:") && vm.contains("- name: scratch\n"), "\(vm)")
        let claim = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {resources: {requests: {storage: 12Mi}}}\n"
        try (vm + "\n---\n" + claim).write(toFile: file, atomically: true, encoding: .utf8)
        // The claim alone: Pending (its volume is made by the first VM that uses it), no capacity yet.
        try claim.write(toFile: f.work + "/claim.yaml", atomically: true, encoding: .utf8)
        var r = try f.vt(["apply", "-f", f.work + "/claim.yaml"])
        #expect(r.code == 0, "\(r.stderr)")
        var table = try f.vt(["get", "pvc"]).stdout
        func rows(_ table: String) -> [[String]] { table.split(separator: "\n").map { $0.split(separator: " ").map(String.init) } }
        #expect(rows(table).first == ["NAME", "STATUS", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS", "AGE"], "\(table)")
        #expect(rows(table).dropFirst().first?.prefix(2) == ["data", "Pending"] && rows(table).dropFirst().first?.count == 3, "\(table)")
        r = try f.vt(["apply", "-f", file])
        #expect(r.code == 0, "\(r.stderr)")
        let logs = try f.poll(["logs", "bb"], seconds: 300) { $0.contains("vtarget-guest: ready") }
        #expect(logs.contains("vtarget-guest: ready"), "\(logs)")
        r = try shell("qemu-img info --output=json -U \(f.state)/volumes/default/data.qcow2", runtime: f.runtime)
        #expect(r.stdout.contains("\"virtual-size\": \(12 << 20)"), "\(r.stdout) \(r.stderr)")
        // Bound once the VM's start made the volume: its size, kubectl's columns.
        table = try f.vt(["get", "pvc"]).stdout
        #expect(rows(table).dropFirst().first?.prefix(4) == ["data", "Bound", "12Mi", "RWO"], "\(table)")
        table = try f.vt(["get", "pvc", "-o", "wide"]).stdout
        #expect(rows(table).first?.contains("REQUEST") == true && rows(table).dropFirst().first?.prefix(5) == ["data", "Bound", "12Mi", "12Mi", "RWO"], "\(table)")
        let yaml = try f.vt(["get", "pvc", "data", "-o", "yaml"]).stdout
        #expect(yaml.contains("phase: Bound") && yaml.contains("storage: 12Mi"), "\(yaml)")
        // Deleting the claim a stored VM mounts is refused, as pvc-protection keeps it on a cluster.
        r = try f.vt(["delete", "pvc", "data"])
        #expect(r.code == 1 && r.stderr.contains("PersistentVolumeClaim \"data\" is used by VirtualMachine default/bb: delete it first"),
                "\(r.code) \(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: f.state + "/volumes/default/data.qcow2"))
        // With its VM: the claim's volume goes with it (reclaim policy Delete), the template's with the VM that owns it.
        #expect(FileManager.default.fileExists(atPath: f.state + "/volumes/default/scratch.qcow2"))
        #expect(try f.vt(["delete", "-f", file]).code == 0)
        #expect(!FileManager.default.fileExists(atPath: f.state + "/volumes/default/data.qcow2"), "the volume outlived its claim")
        #expect(!FileManager.default.fileExists(atPath: f.state + "/volumes/default/scratch.qcow2"), "the template's volume outlived its VM")
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty)
    }
}

extension SupervisorFixture {
    /// The busybox test guest's disk in this fixture's image store as
    /// `vtarget-test/busybox:1`; false (recorded) when there is no guest or the import failed.
    func importBusyboxGuest(sourceLocation: SourceLocation = #_sourceLocation) throws -> Bool {
        guard let guest = VMRunTests.guest else {
            Issue.record("scripts/build-test-guest.sh failed", sourceLocation: sourceLocation)
            return false
        }
        let r = try vt(["image", "import", "vtarget-test/busybox:1", guest + "/x86_64/disk.qcow2"])
        #expect(r.code == 0, "\(r.stderr)", sourceLocation: sourceLocation)
        return r.code == 0
    }

    /// Runs `vtarget ARGS` until its output satisfies `done` or `seconds` pass; its last output.
    func poll(_ args: [String], seconds: Double = 120, _ done: (String) -> Bool) throws -> String {
        var out = ""
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            out = try vt(args).stdout
            if done(out) { break }
            usleep(200_000)
        }
        return out
    }
}

/// A test guest's directory: `env` when `make test` gave it (it builds the
/// guests before any test starts), else what `scripts/build-test-guest.sh
/// ARGS` prints (nil when it fails: a cold build, or `--cached` with no cache).
func testGuestDirectory(_ env: String, arguments: [String] = [], environment: [String: String] = [:]) -> String? {
    if let dir = ProcessInfo.processInfo.environment[env] { return dir.isEmpty ? nil : dir }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: repoRoot + "/scripts/build-test-guest.sh")
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return nil }
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return p.terminationStatus == 0 ? text.trimmingCharacters(in: .whitespacesAndNewlines) : nil
}
