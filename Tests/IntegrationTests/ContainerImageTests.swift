#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import TestSupport

/// The container image of `make image`, end to end and without a cluster or
/// a container daemon: built by scripts/build-image.sh from the release
/// binary, pushed with skopeo to Debian's docker-registry on 127.0.0.1,
/// pulled back and unpacked with umoci; then the seed's rendered Pod and its
/// CAN bus Deployment run their commands, as rendered, inside that root
/// filesystem (chroot as uid 1000, a private network namespace whose
/// /etc/hosts stands in for the bus's Service), and the seed boots to its banner.
///
/// Opt-in (VTARGET_TEST_IMAGE=1; needs `make release`): the first build of
/// the Debian base takes minutes (it is cached after), and a run copies and
/// unpacks a few hundred MB.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["VTARGET_TEST_IMAGE"] == "1",
                             "builds and runs the container image: set VTARGET_TEST_IMAGE=1 (after make release)"))
struct ContainerImageTests {
    static let release = repoRoot + "/.build/release/vtarget"

    static func shq(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    @Test func renderedPodBootsTheSeedInTheImage() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.release) else {
            Issue.record("run `make release` first: \(Self.release) is missing")
            return
        }
        let firmwareYAML = firmware + "/stm32f4-firmware.yaml"
        guard FileManager.default.fileExists(atPath: firmwareYAML) else {
            Issue.record("run `make firmware` first: \(firmwareYAML) is missing")
            return
        }
        let dir = "/tmp/vt-image-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let started = Date()
        let built = try shell("bash \(repoRoot)/scripts/build-image.sh --binary \(Self.release) --out \(dir)/oci --tag test", runtime: dir)
        #expect(built.code == 0, "\(built.stderr.suffix(3000))")
        guard built.code == 0 else { return }
        print("ContainerImageTests: image built in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")

        let registry = try LocalRegistry(in: dir + "/registry")
        defer { registry.stop() }
        let pushed = try shell("skopeo copy --dest-tls-verify=false oci:\(dir)/oci:test docker://\(registry.address)/vtarget:test", runtime: dir)
        #expect(pushed.code == 0, "\(pushed.stderr)")
        let pulled = try shell("skopeo copy --src-tls-verify=false docker://\(registry.address)/vtarget:test oci:\(dir)/pulled:test", runtime: dir)
        #expect(pulled.code == 0, "\(pulled.stderr)")
        let unpacked = try shell("umoci unpack --image \(dir)/pulled:test \(dir)/bundle >/dev/null", runtime: dir)
        #expect(unpacked.code == 0, "\(unpacked.stderr)")
        guard pushed.code == 0, pulled.code == 0, unpacked.code == 0 else { return }

        // The image's own config: entrypoint vtarget, uid 1000.
        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/bundle/config.json"))) as? [String: Any])
        let process = config["process"] as? [String: Any] ?? [:]
        #expect((process["args"] as? [String])?.first == "vtarget")
        #expect((process["user"] as? [String: Any])?["uid"] as? Int == 1000)
        let rootfs = dir + "/bundle/rootfs"
        for tool in ["usr/local/bin/vtarget", "usr/bin/qemu-system-arm", "usr/bin/qemu-system-x86_64", "usr/bin/qemu-img"] {
            #expect(FileManager.default.isExecutableFile(atPath: rootfs + "/" + tool), "\(tool) in the image")
        }

        // What the cluster would run: the seed's Pod and its CAN bus.
        let r = try vt(["render", "--for", "kubernetes", "-f", "examples/seed/stm32f4-qemu.yaml", "-o", "json"], runtime: dir)
        #expect(r.code == 0, "\(r.stderr)")
        let items = try #require((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]])
        func item(_ kind: String) throws -> [String: Any] { try #require(items.first { $0["kind"] as? String == kind }, "\(kind)") }
        let spec = try #require((try item("ConfigMap")["data"] as? [String: String])?["spec.yaml"])
        let podSpec = try #require(try item("Pod")["spec"] as? [String: Any])
        let busSpec = try #require(((try item("Deployment")["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        func container(_ spec: [String: Any]) throws -> (command: [String], env: [String], image: String) {
            let c = try #require((spec["containers"] as? [[String: Any]])?.first)
            let env = (c["env"] as? [[String: String]] ?? []).map { "\($0["name"]!)=\($0["value"]!)" }
            return (try #require(c["command"] as? [String]), env, c["image"] as? String ?? "")
        }
        let pod = try container(podSpec), bus = try container(busSpec)
        #expect(pod.image == "localhost/vtarget:0.1.0" && bus.image == pod.image, "the rendered image is the one make image names")
        #expect(pod.env.contains("VTARGET_REMOTE_CAN=default=can-default:29536"), "\(pod.env)")

        // The kubelet's part: the spec and firmware ConfigMaps as files, /run/vtarget an emptyDir.
        try FileManager.default.createDirectory(atPath: rootfs + "/etc/vtarget/configmaps/stm32f4-firmware", withIntermediateDirectories: true)
        try spec.write(toFile: rootfs + "/etc/vtarget/spec.yaml", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: firmware + "/stm32vldiscovery.elf", toPath: rootfs + "/etc/vtarget/configmaps/stm32f4-firmware/firmware.elf")
        let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        let script = """
            set -e
            R=\(rootfs)
            ip link set lo up
            mount -t proc proc $R/proc
            mount --rbind /dev $R/dev
            mount -t tmpfs tmpfs $R/run
            mount -t tmpfs tmpfs $R/tmp
            mkdir -p $R/run/vtarget && chown 1000:1000 $R/run/vtarget
            echo '127.0.0.1 can-default' >> $R/etc/hosts
            chroot --userspec=1000:1000 $R env -i \(path) HOME=/tmp \(bus.env.map(Self.shq).joined(separator: " ")) \(bus.command.map(Self.shq).joined(separator: " ")) > \(dir)/bus.log 2>&1 &
            bus=$!
            chroot --userspec=1000:1000 $R env -i \(path) HOME=/tmp \(pod.env.map(Self.shq).joined(separator: " ")) \(pod.command.map(Self.shq).joined(separator: " ")) > \(dir)/pod.log 2>&1 &
            pod=$!
            set +e
            for i in $(seq 1 240); do [ -e $R/run/vtarget/ready ] && break; kill -0 $pod 2>/dev/null || break; sleep 0.5; done
            [ -e $R/run/vtarget/ready ]; ready=$?
            sleep 1
            cat $R/run/vtarget/endpoints.env
            kill -TERM $pod; wait $pod
            kill -TERM $bus; wait $bus
            exit $ready
            """
        let run = try finish(launch(["-m", "-n", "-p", "-f", "sh", "-c", script], runtime: dir, executable: "/usr/bin/unshare"))
        let podLog = (try? String(contentsOfFile: dir + "/pod.log", encoding: .utf8)) ?? ""
        let busLog = (try? String(contentsOfFile: dir + "/bus.log", encoding: .utf8)) ?? ""
        #expect(run.code == 0, "the Pod became Ready in the image: \(run.stdout)\(run.stderr)\npod:\n\(podLog.suffix(3000))\nbus:\n\(busLog)")
        #expect(podLog.contains("ready"), "the seed's banner: \(podLog.suffix(2000))")
        #expect(run.stdout.contains("VTARGET_CAN_DEFAULT='can-default:29536'"), "the target joined the bus's Service: \(run.stdout)")
        #expect(busLog.contains("CAN bus default on 0.0.0.0:29536"), "\(busLog)")
    }
}
