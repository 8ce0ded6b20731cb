import Foundation
import Testing
import TestSupport

/// KubeVirt's `dataVolumeTemplates`, run here as CDI would make them: a
/// registry source copied from the store into a named volume grown to its
/// request, a blank one, a clone of the first, and a disk fetched over http
/// from 127.0.0.1 (gzip- and xz-compressed), and a PersistentVolumeClaim of its
/// own sizing another, grown when its request grows; the
/// blank one's storage class puts it in that class's configured directory.
/// What the guest writes to a
/// volume is there at the next start (it is no containerDisk); a source image
/// missing from the store fails before QEMU starts and leaves no volume.
/// A claim moved to another storage class is refused. Four boots of the busybox guest.
@Suite(.serialized) struct VMDataVolumeTests {
    static func yaml(name: String, templates: String, volumes: String, disks: String, userData: String) -> String {
        """
        apiVersion: kubevirt.io/v1
        kind: VirtualMachine
        metadata: {name: \(name)}
        spec:
          runStrategy: Always
          dataVolumeTemplates:
        \(templates)
          template:
            spec:
              domain:
                memory: {guest: 256Mi}
                devices:
                  disks:
        \(disks)
              volumes:
        \(volumes)
                - name: cloudinit
                  cloudInitNoCloud:
                    userData: |
                      #!/bin/sh
                      \(userData)
        """
    }

    static let withVolumes = yaml(name: "dv", templates: """
            - metadata: {name: root}
              spec:
                storage: {resources: {requests: {storage: 64Mi}}}
                source: {registry: {url: "docker://vtarget-test/busybox:1"}}
            - metadata: {name: scratch}
              spec:
                pvc: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 16Mi}}, storageClassName: fast}
                source: {blank: {}}
        """, volumes: """
                - {name: root, dataVolume: {name: root}}
                - {name: scratch, persistentVolumeClaim: {claimName: scratch}}
        """, disks: """
                    - {name: root, disk: {bus: virtio}}
                    - {name: scratch, disk: {bus: virtio}}
                    - {name: cloudinit, disk: {bus: virtio}}
        """, userData: "if head -c 14 /dev/vdb | grep -q persisted-mark; then echo mark-found; else printf persisted-mark >/dev/vdb; sync; echo mark-written; fi")

    @Test func dataVolumesAreMadeOnceFilledAndKept() throws {
        guard let guest = VMRunTests.guest else { Issue.record("scripts/build-test-guest.sh failed"); return }
        let runtime = makeRuntimeDir()
        let state = runtime + "-state", file = runtime + ".yaml"
        defer { for p in [runtime, state, file] { try? FileManager.default.removeItem(atPath: p) } }
        // The scratch volume's class is configured: it lives in that class's directory.
        let classes = runtime + "-classes.yaml", fast = runtime + "-fast"
        defer { for p in [classes, fast] { try? FileManager.default.removeItem(atPath: p) } }
        try "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\nprovisioner: vtarget.dev/directory\nparameters: {path: \(fast)}\n"
            .write(toFile: classes, atomically: true, encoding: .utf8)
        let env = "cd \(repoRoot) && VTARGET_STATE_DIR=\(state) VTARGET_STORAGE_CLASSES=\(classes)"
        let volumes = state + "/volumes/default"
        func run() throws -> RunResult {
            try shell("\(env) timeout 300 \(vtarget) run -f \(file) --until 'vtarget-guest: ready' --timeout 240s", runtime: runtime)
        }
        func virtualSize(_ path: String) throws -> (size: Int, backing: Bool) {
            let r = try shell("qemu-img info --output=json -U \(path)", runtime: runtime)
            let info = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
            return ((info["virtual-size"] as? Int) ?? -1, info["backing-filename"] != nil)
        }

        // The source image is not in the store yet: refused before QEMU, with the command that adds it, and no volume made.
        try Self.withVolumes.write(toFile: file, atomically: true, encoding: .utf8)
        var r = try run()
        #expect(r.code == 1 && r.stderr.contains("vtarget image pull vtarget-test/busybox:1"), "\(r.code) \(r.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: volumes)) ?? []).filter { $0.hasPrefix("root") }.isEmpty,
                "nothing half-made: \((try? FileManager.default.contentsOfDirectory(atPath: volumes)) ?? [])")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)

        r = try shell("\(env) \(vtarget) image import vtarget-test/busybox:1 \(guest)/x86_64/disk.qcow2", runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        // First start: both volumes made, the root one a whole copy (no backing file) grown to its request.
        r = try run()
        #expect(r.code == 0 && r.stdout.contains("user-data: mark-written"), "\(r.code) \(r.stdout.suffix(2000)) \(r.stderr)")
        let root = try virtualSize(volumes + "/root.qcow2"), scratch = try virtualSize(fast + "/default/scratch.qcow2")
        #expect(root.size == 64 << 20 && !root.backing, "\(root)")
        #expect(scratch.size == 16 << 20 && !scratch.backing, "\(scratch)")
        // Second start: the same volumes, with what the guest wrote.
        r = try run()
        #expect(r.code == 0 && r.stdout.contains("user-data: mark-found"), "\(r.code) \(r.stdout.suffix(2000)) \(r.stderr)")

        // The guest's disk served over http on 127.0.0.1, for an http source, gzip- and xz-compressed as CDI takes them.
        let web = runtime + "-web"
        defer { try? FileManager.default.removeItem(atPath: web) }
        try FileManager.default.createDirectory(atPath: web, withIntermediateDirectories: true)
        let packed = try shell("gzip -1 -c \(guest)/x86_64/disk.qcow2 > \(web)/disk.qcow2.gz && xz -0 -T2 -c \(guest)/x86_64/disk.qcow2 > \(web)/disk.qcow2.xz",
                               runtime: runtime)
        #expect(packed.code == 0, "\(packed.stderr)")
        let port = try freeLoopbackPort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-m", "http.server", "--bind", "127.0.0.1", "--directory", web, "\(port)"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        // SIGKILL: the test process blocks SIGTERM, and a spawned child inherits the mask.
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        #expect(SupervisedRecordTests.eventually(10) { (try? shell("curl -sf -o /dev/null http://127.0.0.1:\(port)/disk.qcow2.xz", runtime: runtime))?.code == 0 },
                "the http server on 127.0.0.1:\(port) answers")

        // A source the server does not have: refused before QEMU, no volume left.
        // `web` is served gzip- and xz-compressed; `extra` is a claim of its own, of `extra` bytes, in class `extraClass`.
        func copyVM(web: String, extra: String = "8Mi", extraClass: String? = nil) -> String {
            Self.yaml(name: "copy", templates: """
                    - metadata: {name: copy-root}
                      spec:
                        storage: {}
                        source: {pvc: {name: root}}
                    - metadata: {name: web}
                      spec:
                        storage: {resources: {requests: {storage: 32Mi}}}
                        source: {http: {url: "http://127.0.0.1:\(port)/\(web).gz"}}
                    - metadata: {name: webxz}
                      spec:
                        storage: {resources: {requests: {storage: 32Mi}}}
                        source: {http: {url: "http://127.0.0.1:\(port)/\(web).xz"}}
                """, volumes: """
                        - {name: root, dataVolume: {name: copy-root}}
                        - {name: web, dataVolume: {name: web}}
                        - {name: webxz, dataVolume: {name: webxz}}
                        - {name: extra, persistentVolumeClaim: {claimName: extra}}
                """, disks: """
                            - {name: root, disk: {bus: virtio}}
                            - {name: web, disk: {bus: virtio}}
                            - {name: webxz, disk: {bus: virtio}}
                            - {name: extra, disk: {bus: virtio}}
                            - {name: cloudinit, disk: {bus: virtio}}
                """, userData: "echo booted-from-clone extra-sectors=$(cat /sys/block/vdd/size)") + """

                ---
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata: {name: extra}
                spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: \(extra)}}\(extraClass.map { ", storageClassName: \($0)" } ?? "")}
                """
        }
        try copyVM(web: "missing.qcow2").write(toFile: file, atomically: true, encoding: .utf8)
        r = try run()
        #expect(r.code != 0 && r.stderr.contains("HTTP 404"), "\(r.code) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: volumes + "/web.qcow2"))
        #expect(!FileManager.default.fileExists(atPath: volumes + "/webxz.qcow2"))
        #expect(qemuProcesses(mentioning: runtime).isEmpty)

        // A clone of the root volume boots as another VM, with the served disk as its second.
        try copyVM(web: "disk.qcow2").write(toFile: file, atomically: true, encoding: .utf8)
        r = try run()
        #expect(r.code == 0 && r.stdout.contains("user-data: booted-from-clone extra-sectors=16384"), "\(r.code) \(r.stdout.suffix(2000)) \(r.stderr)")
        #expect(r.stderr.contains("importing http://127.0.0.1:\(port)/disk.qcow2.gz") && r.stderr.contains("importing http://127.0.0.1:\(port)/disk.qcow2.xz"),
                "\(r.stderr)")
        #expect(try virtualSize(volumes + "/copy-root.qcow2").size == 64 << 20)
        #expect(try virtualSize(volumes + "/web.qcow2").size == 32 << 20)
        #expect(try virtualSize(volumes + "/extra.qcow2").size == 8 << 20, "a claim of its own sized its volume")
        // What was served, decompressed, is what each volume holds (qemu-img compares the guest-visible bytes, up to the smaller size).
        for volume in ["web", "webxz"] {
            let same = try shell("qemu-img compare -U \(guest)/x86_64/disk.qcow2 \(volumes)/\(volume).qcow2", runtime: runtime)
            #expect(same.code == 0, "\(volume): \(same.stdout) \(same.stderr)")
        }
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: volumes)) ?? []).sorted()
                == ["copy-root.qcow2", "extra.qcow2", "root.qcow2", "web.qcow2", "webxz.qcow2"])

        // The claim asks for more: its volume grows before QEMU opens it, and the guest sees the bigger disk.
        try copyVM(web: "disk.qcow2", extra: "24Mi").write(toFile: file, atomically: true, encoding: .utf8)
        r = try run()
        #expect(r.code == 0 && r.stdout.contains("user-data: booted-from-clone extra-sectors=49152"), "\(r.code) \(r.stdout.suffix(2000)) \(r.stderr)")
        #expect(r.stderr.contains("volume default/extra grown from 8388608 to 25165824 bytes"), "\(r.stderr)")
        #expect(try virtualSize(volumes + "/extra.qcow2").size == 24 << 20)
        // The claim moved to another storage class: refused before QEMU, pointing at the claim; no second, empty volume.
        try copyVM(web: "disk.qcow2", extra: "24Mi", extraClass: "fast").write(toFile: file, atomically: true, encoding: .utf8)
        r = try run()
        #expect(r.code == 2 && r.stderr.contains("\(file):") && r.stderr.contains("volume default/extra already exists at \(volumes)/extra.qcow2")
                && r.stderr.contains("mv \(volumes)/extra.qcow2 \(fast)/default/extra.qcow2"), "\(r.code) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fast + "/default/extra.qcow2"))
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
        // A storage class file that is not one: bad input, positioned, nothing started.
        try "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\nprovisioner: ebs.csi.aws.com\nparameters: {path: /x}\n"
            .write(toFile: classes, atomically: true, encoding: .utf8)
        r = try run()
        #expect(r.code == 2 && r.stderr.contains("\(classes):4:14: error: provisioner: \"ebs.csi.aws.com\" is a cluster's provisioner"), "\(r.code) \(r.stderr)")
        #expect(qemuProcesses(mentioning: runtime).isEmpty)
    }
}
