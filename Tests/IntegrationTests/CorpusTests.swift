import Foundation
import Testing
import TestSupport

/// KubeVirt's own examples (`examples/kubevirt`, copied unchanged from
/// kubevirt/kubevirt at commit d923fdb815cd2016ddaebdaaa51db04133576d72, see
/// its README) are the acceptance corpus of issue 15: each one, with its
/// images in the store (the busybox test guest's disk under each
/// containerDisk reference, its kernel and initramfs as the kernelBoot
/// image), renders to the exact QEMU command kept in `CorpusGolden/`
/// (`UPDATE_GOLDEN=1` rewrites them), and those the busybox guest can boot
/// (x86_64; its disk boots by BIOS and by UEFI) boot together in one `vtarget run`;
/// vm-alpine-multipvc is applied, started and stopped as its runStrategy
/// Halted asks, and vmi-host-disk runs on the disk it makes.
@Suite(.serialized) struct CorpusTests {
    static let examples = repoRoot + "/examples/kubevirt"
    static let golden = repoRoot + "/Tests/IntegrationTests/CorpusGolden"
    static let diskImages = ["registry:5000/kubevirt/alpine-container-disk-demo:devel",
                             "registry:5000/kubevirt/cirros-container-disk-demo:devel",
                             "registry:5000/kubevirt/fedora-with-test-tooling-container-disk:devel"]

    /// Each example with the files it is rendered with (csmall.yaml is the
    /// instancetype vm-cirros-csmall names) and the flags it needs.
    static let cases: [(name: String, files: [String], flags: [String])] = [
        ("vm-alpine-multipvc", ["vm-alpine-multipvc"], []),
        ("vm-cirros", ["vm-cirros"], []),
        ("vm-cirros-csmall", ["csmall", "vm-cirros-csmall"], []),
        ("vmi-alpine-efi", ["vmi-alpine-efi"], []),
        ("vmi-arm", ["vmi-arm"], []),
        ("vmi-ephemeral", ["vmi-ephemeral"], []),
        ("vmi-fedora", ["vmi-fedora"], []),
        ("vmi-host-disk", ["vmi-host-disk"], ["--allow-host-paths"]),
        ("vmi-kernel-boot", ["vmi-kernel-boot"], []),
        ("vmi-masquerade", ["vmi-masquerade"], []),
        ("vmi-nocloud", ["vmi-nocloud"], []),
        ("vmi-pvc", ["vmi-pvc"], []),
        ("vmi-sata", ["vmi-sata"], []),
    ]

    /// The claim vmi-pvc and vm-alpine-multipvc name, as a cluster would
    /// have it: a DataVolume importing the alpine example's disk image.
    static let diskAlpine = """
        apiVersion: cdi.kubevirt.io/v1beta1
        kind: DataVolume
        metadata: {name: disk-alpine}
        spec:
          storage: {resources: {requests: {storage: 1Gi}}}
          source: {registry: {url: "docker://\(diskImages[0])"}}

        """

    /// A state directory with every image the corpus names.
    static func store(guest: String, runtime: String) throws -> String {
        let state = runtime + "-state"
        for image in diskImages {
            let r = try shell("VTARGET_STATE_DIR=\(state) \(vtarget) image import \(image) \(guest)/x86_64/disk.qcow2", runtime: runtime)
            #expect(r.code == 0, "\(image): \(r.stderr)")
        }
        let r = try VMKernelBootTests.importImage(guest: guest, state: state, runtime: runtime)
        #expect(r.code == 0, "kernelBoot image: \(r.stderr)")
        return state
    }

    /// What changes from run to run: the loopback port a guest port is forwarded to.
    static func normalized(_ argv: String) -> String {
        argv.replacingOccurrences(of: #"hostfwd=tcp:127\.0\.0\.1:[0-9]+-"#, with: "hostfwd=tcp:127.0.0.1:PORT-", options: .regularExpression)
            .replacingOccurrences(of: #"hostfwd=udp:127\.0\.0\.1:[0-9]+-"#, with: "hostfwd=udp:127.0.0.1:PORT-", options: .regularExpression)
    }

    @Test func everyExampleRendersToItsGoldenCommand() throws {
        guard let guest = VMRunTests.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        let runtime = makeRuntimeDir()
        defer { for p in [runtime, runtime + "-state", runtime + "-tree"] { try? FileManager.default.removeItem(atPath: p) } }
        let state = try Self.store(guest: guest, runtime: runtime)
        // Every copied example is in a case, and every golden file is one's.
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.examples).filter { $0.hasSuffix(".yaml") }
        #expect(Set(files.map { String($0.dropLast(5)) }) == Set(Self.cases.flatMap(\.files)))
        let goldens = try FileManager.default.contentsOfDirectory(atPath: Self.golden)
        #expect(Set(goldens) == Set(Self.cases.map { $0.name + ".argv" }), "stale or missing golden files")
        let update = ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1"
        for c in Self.cases {
            let inputs = c.files.map { "-f \(Self.examples)/\($0).yaml" }.joined(separator: " ")
            let r = try shell("VTARGET_STATE_DIR=\(state) \(vtarget) render \(inputs) \(c.flags.joined(separator: " "))", runtime: runtime)
            #expect(r.code == 0, "\(c.name): \(r.stderr)")
            let argv = Self.normalized(r.stdout)
            let path = Self.golden + "/" + c.name + ".argv"
            if update { try argv.write(toFile: path, atomically: true, encoding: .utf8); continue }
            let expected = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            #expect(argv == expected, "\(c.name): render differs from CorpusGolden/\(c.name).argv (UPDATE_GOLDEN=1 rewrites it)\n\(argv)")
            #expect(argv.hasPrefix("qemu-system-"), "\(c.name): \(argv)")
        }
        // render makes nothing: no QEMU directory, no overlay.
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: runtime)) ?? []).isEmpty)
    }

    /// The examples the busybox guest boots as written (x86_64; vmi-sata's
    /// disk on SATA, read by the BIOS alone; vmi-alpine-efi's by OVMF, through
    /// the disk's systemd-boot; vmi-pvc's claim made by a DataVolume from the
    /// store): ten VMs in one `vtarget run`, each to the guest's ready line; vm-cirros's and vmi-arm's user-data scripts run,
    /// vmi-masquerade's port is forwarded. One boot of each.
    @Test func theBootableExamplesBootTogether() throws {
        guard let guest = VMRunTests.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        let runtime = makeRuntimeDir()
        defer { for p in [runtime, runtime + "-state", runtime + "-tree", runtime + ".sh"] { try? FileManager.default.removeItem(atPath: p) } }
        let state = try Self.store(guest: guest, runtime: runtime)
        let vms = ["vm-cirros", "vm-cirros-csmall", "vmi-alpine-efi", "vmi-arm", "vmi-ephemeral", "vmi-fedora", "vmi-masquerade", "vmi-nocloud",
                   "vmi-pvc", "vmi-sata"]
        let claim = runtime + "-disk-alpine.yaml"
        defer { try? FileManager.default.removeItem(atPath: claim) }
        try Self.diskAlpine.write(toFile: claim, atomically: true, encoding: .utf8)
        try """
            for i in $(seq 1 1200); do n=0
              for v in \(vms.joined(separator: " ")); do grep -q 'vtarget-guest: ready' $VTARGET_RUNTIME_DIR/run-*/$v/logs/console.log 2>/dev/null && n=$((n+1)); done
              [ $n = \(vms.count) ] && exit 0; sleep 0.5
            done; exit 1

            """.write(toFile: runtime + ".sh", atomically: true, encoding: .utf8)
        let inputs = (["csmall"] + vms).map { "-f \(Self.examples)/\($0).yaml" }.joined(separator: " ") + " -f \(claim)"
        let r = try shell("VTARGET_STATE_DIR=\(state) timeout 900 \(vtarget) run \(inputs) --timeout 840s -- sh \(runtime).sh", runtime: runtime)
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        for vm in vms { #expect(r.stdout.contains("\(vm)/console| vtarget-guest: ready"), "\(vm): \(r.stdout)") }
        // The seed is the example's: its user-data script ran, the hostname is the VM's.
        #expect(r.stdout.contains("vm-cirros/console| vtarget-guest: user-data ran exit=0")
                && r.stdout.contains("vm-cirros/console| vtarget-guest: hostname=vm-cirros"), "\(r.stdout)")
        #expect(r.stderr.contains("vmi-masquerade: guest port 80/tcp of testmasquerade on 127.0.0.1:"), "\(r.stderr)")
        #expect(r.stdout.contains("vmi-arm/console| user-data: printed from cloud-init userdata"), "\(r.stdout)")
        // UEFI: OVMF's boot manager started the disk's loader (a BIOS boot prints no BdsDxe line).
        #expect(r.stdout.range(of: #"vmi-alpine-efi/console\|[^\n]*BdsDxe: starting Boot"#, options: .regularExpression) != nil, "\(r.stdout)")
        #expect(r.stdout.range(of: #"vm-cirros/console\|[^\n]*BdsDxe"#, options: .regularExpression) == nil, "\(r.stdout)")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }

    /// vm-alpine-multipvc as a cluster runs it: applied, it stays Stopped
    /// (runStrategy Halted) until `start`; then it boots from its first
    /// claim (disk-alpine, a DataVolume filled from the store) with its
    /// second (disk-custom, a blank claim) beside it, and `stop` halts it again.
    @Test func theHaltedMultiClaimExampleStartsAndStops() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        guard let guest = VMRunTests.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        var r = try f.vt(["image", "import", Self.diskImages[0], guest + "/x86_64/disk.qcow2"])
        #expect(r.code == 0, "\(r.stderr)")
        let claims = f.work + "/claims.yaml"
        try (Self.diskAlpine + """
            ---
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata: {name: disk-custom}
            spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 64Mi}}}
            """).write(toFile: claims, atomically: true, encoding: .utf8)
        r = try f.vt(["apply", "-f", Self.examples + "/vm-alpine-multipvc.yaml", "-f", claims])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try f.vt(["get", "vm", "vm-alpine-multipvc"]).stdout.contains("Stopped"))
        #expect(qemuProcesses(mentioning: f.runtime).isEmpty, "Halted: nothing started")

        r = try f.vt(["start", "vm-alpine-multipvc"])
        #expect(r.code == 0 && r.stdout == "virtualmachine.kubevirt.io/vm-alpine-multipvc started\n", "\(r.stdout) \(r.stderr)")
        let logs = try f.poll(["logs", "vm-alpine-multipvc"], seconds: 240) { $0.contains("vtarget-guest: ready") }
        #expect(logs.contains("vtarget-guest: ready"), "\(logs.suffix(3000))")
        // Both claims' volumes, sized by their requests, are the VM's two disks.
        let volumes = f.state + "/volumes/default"
        for (name, size) in [("disk-alpine", 1 << 30), ("disk-custom", 64 << 20)] {
            let info = try shell("qemu-img info --output=json -U \(volumes)/\(name).qcow2", runtime: f.runtime)
            let json = (try? JSONSerialization.jsonObject(with: Data(info.stdout.utf8))) as? [String: Any] ?? [:]
            #expect(json["virtual-size"] as? Int == size, "\(name): \(info.stdout) \(info.stderr)")
        }
        let qemu = qemuProcesses(mentioning: f.runtime)
        #expect(qemu.count == 1, "\(qemu)")
        let argv = qemu.first.flatMap { try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8) }?.replacingOccurrences(of: "\0", with: " ") ?? ""
        #expect(argv.contains(#""node-name":"fmt-pvcdisk1""#) && argv.contains(#""node-name":"fmt-pvcdisk2""#), "\(argv)")

        r = try f.vt(["stop", "vm-alpine-multipvc"])
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        let table = try f.poll(["get", "vm", "vm-alpine-multipvc"]) { $0.contains("Stopped") }
        #expect(table.contains("Stopped"), "\(table)")
        #expect(SupervisedRecordTests.eventually(30) { qemuProcesses(mentioning: f.runtime).isEmpty })
    }

    /// vmi-host-disk as written: `/var/data/disk.img`, DiskOrCreate, 1Gi.
    /// Run in a mount namespace of its own whose /var is an empty tmpfs, so
    /// the example's path is made without touching the host's /var. The
    /// disk is blank (there is nothing to boot): QEMU runs with it as its
    /// virtio disk, and the file is a sparse 1 GiB raw image.
    @Test func theHostDiskExampleMakesItsDiskAndRuns() throws {
        let runtime = makeRuntimeDir()
        defer { for p in [runtime, runtime + "-state"] { try? FileManager.default.removeItem(atPath: p) } }
        // As root a mount namespace alone; otherwise a user namespace for it too.
        let unshare = getuid() == 0 ? "unshare -m" : "unshare -r -m"
        let hostHadDisk = FileManager.default.fileExists(atPath: "/var/data/disk.img")
        let check = #"""
            qemu-img info --output=json -U /var/data/disk.img
            python3 - <<'PY'
            import json, os, socket
            s = socket.socket(socket.AF_UNIX); s.connect(os.environ["VTARGET_QMP"]); f = s.makefile("rwb")
            def ask(cmd):
                f.write(json.dumps({"execute": cmd}).encode() + b"\n"); f.flush()
                while True:
                    m = json.loads(f.readline())
                    if "return" in m or "error" in m: return m
            f.readline()
            ask("qmp_capabilities")
            print("status", ask("query-status")["return"]["status"])
            for b in ask("query-block")["return"]:
                i = b.get("inserted")
                if i: print("block", b["qdev"], i["node-name"], i["image"]["virtual-size"])
            PY
            """#
        try check.write(toFile: runtime + "-check.sh", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: runtime + "-check.sh") }
        let r = try shell("VTARGET_STATE_DIR=\(runtime)-state timeout 120 \(unshare) sh -c 'mount --make-rprivate / && mount -t tmpfs none /var && mkdir /var/data && "
            + "\(vtarget) run -f \(Self.examples)/vmi-host-disk.yaml --allow-host-paths --timeout 90s -- sh \(runtime)-check.sh'", runtime: runtime)
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains(#""virtual-size": 1073741824"#) && r.stdout.contains(#""format": "raw""#), "\(r.stdout)")
        #expect(r.stdout.contains("status running"), "\(r.stdout)")
        #expect(r.stdout.contains("block /machine/peripheral/dev-host-disk/virtio-backend fmt-host-disk 1073741824"), "\(r.stdout)")
        #expect(FileManager.default.fileExists(atPath: "/var/data/disk.img") == hostHadDisk, "the host's /var was not touched")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }
}
