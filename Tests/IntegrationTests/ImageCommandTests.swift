#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HostOS
import TestSupport
import Testing

/// Debian's docker-registry on a free loopback port, with its own config and
/// storage, for one test; killed and removed at the end.
final class LocalRegistry {
    let dir: String
    let port: UInt16
    let process: Process
    var address: String { "127.0.0.1:\(port)" }
    var storage: String { dir + "/storage" }

    init(in dir: String) throws {
        self.dir = dir
        port = try freeLoopbackPort()
        try FileManager.default.createDirectory(atPath: dir + "/storage", withIntermediateDirectories: true)
        try """
            version: 0.1
            log: {level: error}
            storage:
              filesystem: {rootdirectory: \(dir)/storage}
              delete: {enabled: true}
            http:
              addr: 127.0.0.1:\(port)
            """.write(toFile: dir + "/config.yml", atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
        process.arguments = ["serve", dir + "/config.yml"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        // Ready once /v2/ answers.
        for _ in 0..<100 {
            if (try? shell("curl -sf http://\(address)/v2/ >/dev/null", runtime: dir))?.code == 0 { return }
            usleep(100_000)
        }
        stop()
        throw RegistryTestError(message: "docker-registry did not answer on \(address)")
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// Builds a containerDisk OCI layout of `files` and pushes it as `repo:tag` with skopeo.
    func push(_ files: [String], as repoTag: String, extra: [String] = [], skopeoFlags: String = "") throws {
        let layout = dir + "/layout-\(UInt32.random(in: 0...UInt32.max))"
        let tag = String(repoTag.split(separator: ":").last!)
        let script = repoRoot + "/Tests/IntegrationTests/Clients/oci_layout.py"
        let made = try shell("python3 \(script) \(layout) \(tag) \(files.joined(separator: " ")) \(extra.joined(separator: " "))", runtime: dir)
        #expect(made.code == 0, "\(made.stderr)")
        let pushed = try shell("skopeo copy \(skopeoFlags) --dest-tls-verify=false oci:\(layout):\(tag) docker://\(address)/\(repoTag)", runtime: dir)
        #expect(pushed.code == 0, "\(pushed.stderr)")
    }

    /// The hex digests of the layers of `repo:tag` (a single-platform image).
    func layerDigests(_ repoTag: String) throws -> [String] {
        let r = try shell("skopeo inspect --raw --tls-verify=false docker://\(address)/\(repoTag) | python3 -c 'import json,sys; print(\"\\n\".join(l[\"digest\"][7:] for l in json.load(sys.stdin)[\"layers\"]))'", runtime: dir)
        return r.stdout.split(separator: "\n").map(String.init)
    }

    /// The digest of what the registry serves for `repo:tag`.
    func manifestDigest(_ repoTag: String) throws -> String {
        let r = try shell("skopeo inspect --raw --tls-verify=false docker://\(address)/\(repoTag) | sha256sum", runtime: dir)
        return "sha256:" + r.stdout.prefix(64)
    }
}

struct RegistryTestError: Error { var message: String }

/// A loopback TCP port free right now (for QEMU's hostfwd, a registry).
func freeLoopbackPort() throws -> UInt16 { UInt16(try LoopbackPort.free()) }

/// `vtarget image ...` through the built binary, with its own state directory.
func imageCLI(_ args: [String], state: String) throws -> RunResult {
    try finish(launch(["image"] + args, runtime: "/tmp", environment: ["VTARGET_STATE_DIR": state]))
}

@Suite(.serialized) struct ImageCommandTests {
    @Test func importListInspectRemove() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let q = try await s.disk("c.qcow2", size: 64 << 20)
        let r = try await s.disk("r.raw", format: .raw, size: 1 << 20)
        let imported = try imageCLI(["import", "cirros:0.6", q], state: s.state)
        #expect(imported.code == 0, "\(imported.stderr)")
        #expect(imported.stdout.contains("imported cirros:0.6 sha256:" + (try sha256(ofFile: q))), "\(imported.stdout)")
        #expect(try imageCLI(["import", "127.0.0.1:5000/team/raw", r], state: s.state).code == 0)
        let table = try imageCLI(["ls"], state: s.state)
        let lines = table.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines.first == ["NAME", "TAG", "DIGEST", "FORMAT", "SIZE", "CREATED"], "\(table.stdout)")
        #expect(lines.dropFirst().first?.prefix(6) == ["127.0.0.1:5000/team/raw", "latest", String(try sha256(ofFile: r).prefix(12)), "raw", "1", "MiB"], "\(table.stdout)")
        #expect(lines.dropFirst(2).first?.prefix(6) == ["cirros", "0.6", String(try sha256(ofFile: q).prefix(12)), "qcow2", "64", "MiB"], "\(table.stdout)")
        #expect(try imageCLI(["ls", "-o", "name"], state: s.state).stdout == "127.0.0.1:5000/team/raw:latest\ncirros:0.6\n")
        let json = try imageCLI(["ls", "-o", "json"], state: s.state)
        let items = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        #expect(items?.count == 2 && items?[1]["virtualSize"] as? Int == 64 << 20 && items?[1]["format"] as? String == "qcow2", "\(json.stdout)")
        let yaml = try imageCLI(["ls", "-o", "yaml"], state: s.state)
        #expect(yaml.code == 0 && yaml.stdout.contains("- reference: cirros:0.6\n  name: cirros\n  tag: \"0.6\"\n"), "\(yaml.stdout)")
        let inspect = try imageCLI(["inspect", "cirros:0.6"], state: s.state)
        let obj = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
        #expect(obj?["digest"] as? String == "sha256:" + (try sha256(ofFile: q)))
        #expect(obj?["refs"] as? [String] == ["cirros:0.6"])
        #expect((obj?["source"] as? [String: Any])?["file"] as? String == q)
        #expect((obj?["fileSize"] as? Int ?? 0) > 0)
        let rm = try imageCLI(["rm", "cirros:0.6", "127.0.0.1:5000/team/raw"], state: s.state)
        #expect(rm.code == 0 && rm.stdout.contains("deleted sha256:"), "\(rm.stdout)\(rm.stderr)")
        #expect(try imageCLI(["ls", "-o", "name"], state: s.state).stdout.isEmpty)
        #expect(s.blobs().isEmpty)
    }

    @Test func badInputIsExitTwoMissingIsOne() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let text = s.dir + "/notes.txt"
        try "hello\n".write(toFile: text, atomically: true, encoding: .utf8)
        let q = try await s.disk("c.qcow2")
        for (args, words) in [(["import", "Bad:Name", q], "expected NAME[:TAG]"),
                              (["import", "x@sha256:" + String(repeating: "a", count: 64), q], "computes the digest"),
                              (["import", "x", text], "not a disk image"),
                              (["import", "x", s.dir + "/none.qcow2"], "No such file"),
                              (["pull", "cirros"], "name the registry"),
                              (["pull", "127.0.0.1:1/x", "--arch", "mips"], "--arch mips"),
                              (["pull", "127.0.0.1:1/x", "--name", "a@sha256:" + String(repeating: "a", count: 64)], "computes the digest"),
                              (["inspect", "UPPER"], "expected NAME[:TAG]"),
                              (["ls", "-o", "xml"], "xml"),
                              (["rm"], "name at least one image")] {
            let r = try imageCLI(args, state: s.state)
            #expect(r.code == 2, "\(args): \(r.code) \(r.stderr)")
            #expect(r.stderr.contains(words), "\(args): \(r.stderr)")
        }
        for args in [["inspect", "cirros"], ["rm", "cirros:9"]] {
            let r = try imageCLI(args, state: s.state)
            #expect(r.code == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.contains("no image cirros") && r.stderr.contains("vtarget image ls"), "\(r.stderr)")
        }
        // A registry nobody listens on: a failure, not bad input.
        let down = try imageCLI(["pull", "127.0.0.1:\(try freeLoopbackPort())/x:1"], state: s.state)
        #expect(down.code == 1 && down.stderr.contains("cannot reach the registry"), "\(down.stderr)")
        #expect(s.temps().isEmpty && s.blobs().isEmpty)
    }

    @Test func pullByTagAndByDigest() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let registry = try LocalRegistry(in: s.dir + "/registry")
        defer { registry.stop() }
        let disk = try await s.disk("disk.qcow2", size: 32 << 20, fill: "5a")
        try registry.push([disk], as: "cirros:latest")
        let pulled = try imageCLI(["pull", registry.address + "/cirros:latest"], state: s.state)
        #expect(pulled.code == 0, "\(pulled.stderr)")
        let want = "sha256:" + (try sha256(ofFile: disk))
        #expect(pulled.stdout.contains(want), "the store holds exactly the disk that was pushed: \(pulled.stdout)")
        let manifest = try registry.manifestDigest("cirros:latest")
        #expect(try imageCLI(["ls", "-o", "name"], state: s.state).stdout
                == "\(registry.address)/cirros:latest\n\(registry.address)/cirros@\(manifest)\n")
        let inspect = try JSONSerialization.jsonObject(with: Data(try imageCLI(["inspect", registry.address + "/cirros"], state: s.state).stdout.utf8)) as? [String: Any]
        let source = inspect?["source"] as? [String: Any]
        #expect(source?["type"] as? String == "pull" && source?["manifest"] as? String == manifest, "\(String(describing: inspect))")
        #expect(inspect?["virtualSize"] as? Int == 32 << 20)

        // By digest, into a fresh store, under a local name.
        let other = s.dir + "/state2"
        let byDigest = try finish(launch(["image", "pull", "\(registry.address)/cirros@\(manifest)", "--name", "local/cirros:1"],
                                         runtime: "/tmp", environment: ["VTARGET_STATE_DIR": other]))
        #expect(byDigest.code == 0 && byDigest.stdout.contains(want), "\(byDigest.stderr)")
        #expect(try imageCLI(["ls", "-o", "name"], state: other).stdout == "local/cirros:1\n")
        // An uncompressed tar layer (skopeo gzips unless told to keep the layout's digests).
        try registry.push([disk], as: "plain:1", skopeoFlags: "--preserve-digests")
        let plain = try imageCLI(["pull", registry.address + "/plain:1"], state: other)
        #expect(plain.code == 0 && plain.stdout.contains(want), "\(plain.stderr)")
        #expect(try shell("skopeo inspect --raw --tls-verify=false docker://\(registry.address)/plain:1", runtime: s.dir).stdout
                    .contains("application/vnd.oci.image.layer.v1.tar\""))
        // A digest the registry does not have.
        let wrong = try imageCLI(["pull", "\(registry.address)/cirros@sha256:" + String(repeating: "0", count: 64)], state: s.state)
        #expect(wrong.code == 1 && wrong.stderr.contains("has no"), "\(wrong.stderr)")
    }

    @Test func multiArchIndexPicksThePlatform() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let registry = try LocalRegistry(in: s.dir + "/registry")
        defer { registry.stop() }
        let disk = try await s.disk("disk.raw", format: .raw, size: 4 << 20)
        try registry.push([disk], as: "multi:1", extra: ["--gzip", "--platforms", "amd64,arm64"], skopeoFlags: "--all")
        // Both platforms carry the same disk: one store each, or the first pull's source stays.
        for arch in ["arm64", "amd64"] {
            let state = s.dir + "/state-" + arch
            let r = try imageCLI(["pull", registry.address + "/multi:1", "--arch", arch, "--name", "m:\(arch)"], state: state)
            #expect(r.code == 0, "\(r.stderr)")
            let inspect = try JSONSerialization.jsonObject(with: Data(try imageCLI(["inspect", "m:\(arch)"], state: state).stdout.utf8)) as? [String: Any]
            #expect((inspect?["source"] as? [String: Any])?["platform"] as? String == "linux/\(arch)")
            #expect(inspect?["format"] as? String == "raw")
        }
        let none = try imageCLI(["pull", registry.address + "/multi:1", "--arch", "x86_64", "--name", "m:x"], state: s.state)
        #expect(none.code == 0, "x86_64 is amd64: \(none.stderr)")
    }

    @Test func aTamperedBlobIsRefusedAndLeavesNothing() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let registry = try LocalRegistry(in: s.dir + "/registry")
        defer { registry.stop() }
        let disk = try await s.disk("disk.qcow2", fill: "11")
        try registry.push([disk], as: "t:1")
        // Overwrite bytes of the layer's blob in the registry's own storage: it serves them as they are.
        let layer = try registry.layerDigests("t:1")
        #expect(layer.count == 1)
        let data = "\(registry.storage)/docker/registry/v2/blobs/sha256/\(layer[0].prefix(2))/\(layer[0])/data"
        #expect(FileManager.default.fileExists(atPath: data), "\(data)")
        #expect(try shell("printf 'XXXXXXXX' | dd of=\(data) bs=1 seek=20 conv=notrunc status=none", runtime: s.dir).code == 0)
        let r = try imageCLI(["pull", registry.address + "/t:1"], state: s.state)
        #expect(r.code == 1, "\(r.stderr)")
        #expect(r.stderr.contains("refused, nothing stored"), "\(r.stderr)")
        #expect(s.blobs().isEmpty && s.temps().isEmpty)
        #expect(try imageCLI(["ls", "-o", "name"], state: s.state).stdout.isEmpty)
    }

    @Test func missingTagAndBadLayouts() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let registry = try LocalRegistry(in: s.dir + "/registry")
        defer { registry.stop() }
        let a = try await s.disk("a.qcow2", fill: "aa")
        let b = try await s.disk("b.raw", format: .raw)
        try registry.push([a, b], as: "two:1")
        let missing = try imageCLI(["pull", registry.address + "/two:nope"], state: s.state)
        #expect(missing.code == 1 && missing.stderr.contains("has no two:nope") && missing.stderr.contains("MANIFEST_UNKNOWN"), "\(missing.stderr)")
        let unknownRepo = try imageCLI(["pull", registry.address + "/never/pushed"], state: s.state)
        #expect(unknownRepo.code == 1 && unknownRepo.stderr.contains("has no never/pushed:latest"), "\(unknownRepo.stderr)")
        let two = try imageCLI(["pull", registry.address + "/two:1"], state: s.state)
        #expect(two.code == 1 && two.stderr.contains("found /disk/a.qcow2, /disk/b.raw"), "\(two.stderr)")
        let notes = s.dir + "/notes.txt"
        try "no disk here\n".write(toFile: notes, atomically: true, encoding: .utf8)
        try registry.push([notes], as: "notes:1")
        let text = try imageCLI(["pull", registry.address + "/notes:1"], state: s.state)
        #expect(text.code == 2 && text.stderr.contains("not a disk image"), "\(text.stderr)")
        #expect(s.blobs().isEmpty && s.temps().isEmpty)
    }
}
