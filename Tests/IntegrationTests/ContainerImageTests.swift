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
/// On with VTARGET_TEST_IMAGE=1, which `make test` and `make test-image`
/// set: the first build of the Debian base takes minutes (it is cached
/// after), and a run copies and unpacks a few hundred MB. The binary put in
/// the image is VTARGET_TEST_IMAGE_BINARY when set (`make test`: a debug
/// build linked with the static Swift runtime, as the image needs, which
/// costs CI half of what a release build would), else the release binary
/// (`make test-image`).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["VTARGET_TEST_IMAGE"] == "1",
                             "builds and runs the container image: set VTARGET_TEST_IMAGE=1 (make test and make test-image do)"))
struct ContainerImageTests {
    static let binary = ProcessInfo.processInfo.environment["VTARGET_TEST_IMAGE_BINARY"].flatMap { $0.isEmpty ? nil : $0 }
        ?? repoRoot + "/.build/release/vtarget"

    /// Whether the binary for the image exists; a recorded issue saying how to make it when not.
    static func binaryIsThere(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            Issue.record("\(binary) is missing: run `make release`, or set VTARGET_TEST_IMAGE_BINARY", sourceLocation: sourceLocation)
            return false
        }
        return true
    }

    static func shq(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    @Test func renderedPodBootsTheSeedInTheImage() throws {
        guard Self.binaryIsThere() else { return }
        let firmwareYAML = firmware + "/stm32f4-firmware.yaml"
        guard FileManager.default.fileExists(atPath: firmwareYAML) else {
            Issue.record("run `make firmware` first: \(firmwareYAML) is missing")
            return
        }
        let dir = "/tmp/vt-image-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        // The build's log goes to a file: mmdebstrap says a lot, more than a pipe holds.
        let started = Date()
        let built = try shell("bash \(repoRoot)/scripts/build-image.sh --binary \(Self.binary) --out \(dir)/oci --tag test 2>\(dir)/build.log", runtime: dir)
        let buildLog = (try? String(contentsOfFile: dir + "/build.log", encoding: .utf8)) ?? ""
        #expect(built.code == 0, "\(buildLog.suffix(3000))")
        guard built.code == 0 else { return }
        #expect(built.stdout == "\(dir)/oci:test\n")
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
        // The bus's command goes into a double-quoted sh -c below.
        #expect(!(bus.command + bus.env).joined().contains { "\"$`\\".contains($0) }, "\(bus.command)")
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
            # The bus's Pod has an emptyDir of its own at /run/vtarget: a tmpfs in a mount namespace of its own.
            unshare -m sh -c "mount -t tmpfs -o mode=0755,uid=1000,gid=1000 tmpfs $R/run/vtarget && exec chroot --userspec=1000:1000 $R env -i \(path) HOME=/tmp \(bus.env.map(Self.shq).joined(separator: " ")) \(bus.command.map(Self.shq).joined(separator: " "))" > \(dir)/bus.log 2>&1 &
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
        #expect(podLog.contains("hello from stm32vldiscovery") && podLog.contains("vtarget sample firmware: echo ready"),
                "the seed's banner: \(podLog.suffix(2000))")
        #expect(run.stdout.contains("VTARGET_CAN_DEFAULT='can-default:29536'"), "the target joined the bus's Service: \(run.stdout)")
        #expect(busLog.contains("CAN bus default on 0.0.0.0:29536"), "\(busLog)")
    }

    /// Interrupted while mmdebstrap makes the base (a cache of its own, so
    /// the base is cold), the build leaves --out as it was, no half-made base
    /// in the cache and no temporary directory anywhere.
    @Test func anInterruptedBuildLeavesNothingHalfWritten() throws {
        guard Self.binaryIsThere() else { return }
        let dir = "/tmp/vt-image-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            set -u
            D=\(dir)
            mkdir -p $D/out/old $D/tmp $D/cache
            echo kept > $D/out/old/file
            # setsid: the build and what it starts are one process group, as under a terminal's Ctrl-C.
            TMPDIR=$D/tmp XDG_CACHE_HOME=$D/cache setsid bash \(repoRoot)/scripts/build-image.sh --binary \(Self.binary) --out $D/out --tag test >$D/build.out 2>$D/build.log &
            build=$!
            for i in $(seq 1 1200); do pgrep -g $build -x mmdebstrap >/dev/null && break; kill -0 $build 2>/dev/null || break; sleep 0.1; done
            pgrep -g $build -x mmdebstrap >/dev/null || { echo "mmdebstrap never started"; exit 3; }
            sleep 2
            kill -INT -- -$build
            wait $build; echo "exit $?"
            """
        // bash: its kill signals a process group (dash's does not take `--`).
        let run = finish(try launch(["-c", script], runtime: dir, executable: "/bin/bash"))
        let log = (try? String(contentsOfFile: dir + "/build.log", encoding: .utf8)) ?? ""
        // Which status depends on the step interrupted (mmdebstrap's own, or 130): any but 0.
        #expect(run.code == 0 && run.stdout.hasPrefix("exit ") && run.stdout != "exit 0\n", "\(run.stdout)\(run.stderr)\n\(log.suffix(2000))")
        #expect((try? String(contentsOfFile: dir + "/out/old/file", encoding: .utf8)) == "kept\n", "--out as it was")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: dir + "/out")) == ["old"])
        #expect((try? FileManager.default.contentsOfDirectory(atPath: dir + "/tmp")) == [], "mmdebstrap's temporary directory removed")
        let cache = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/cache/vtarget/image-base")) ?? []
        #expect(cache.count == 1 && cache[0].hasPrefix(".lock-"), "only the lock file stays in the cache: \(cache)")
        let siblings = (try? FileManager.default.contentsOfDirectory(atPath: dir))?.filter { $0.hasPrefix(".out.new") } ?? []
        #expect(siblings.isEmpty, "\(siblings)")
        #expect((try? String(contentsOfFile: dir + "/build.out", encoding: .utf8)) == "", "no image reference printed")
    }
}

/// The CAN bus Deployment's container runs as uid 1000, as the rendered Pods
/// do: its bus host must take TCP members without any privilege. (It once set
/// TCP_NODELAY at the socket level, which is SO_DEBUG there: root only, so
/// every member was closed on accept.)
@Suite struct CANServeAsUserTests {
    @Test func aBusServedByAnUnprivilegedUserGreetsItsMembers() throws {
        let runtime = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        #expect(chown(runtime, 1000, 1000) == 0)
        let port = try freeLoopbackPort()
        let server = try launch(["--reuid=1000", "--regid=1000", "--clear-groups", vtarget, "can", "serve", "user-bus", "--listen", "127.0.0.1:\(port)"],
                                runtime: runtime, executable: "/usr/bin/setpriv", environment: ["HOME": runtime])
        defer { if server.0.isRunning { server.0.terminate() } }
        #expect(readUntil(server.2, "CAN bus user-bus on 127.0.0.1:\(port)", seconds: 30).contains("CAN bus user-bus"))
        // A member's socketcand handshake: the greeting, then ok to open and to rawmode.
        let client = finish(try launch(["-c", """
            exec 3<>/dev/tcp/127.0.0.1/\(port) || exit 3
            IFS= read -r -d '>' -t 10 hi <&3; echo "$hi>"
            printf '< open user-bus >' >&3; IFS= read -r -d '>' -t 10 ok <&3; echo "$ok>"
            printf '< rawmode >' >&3; IFS= read -r -d '>' -t 10 ok <&3; echo "$ok>"
            """], runtime: runtime, executable: "/bin/bash"))
        #expect(client.stdout == "< hi >\n< ok >\n< ok >\n", "\(client.stdout)\(client.stderr)")
        server.0.terminate()
        let done = finish(server)
        #expect(done.code == 0, "\(done.stderr)")
    }
}
