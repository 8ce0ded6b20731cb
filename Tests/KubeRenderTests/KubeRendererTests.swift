import Foundation
import KubeRender
import ResourceKit
import TargetSpec
import TestSupport
import Testing
import YAMLTree

@Suite struct KubeRendererTests {
    /// The board examples (VMs are not rendered for a cluster yet).
    static let examples: [String] = {
        let dir = repoRoot + "/examples"
        let top = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") && !$0.hasPrefix("kubevirt") && !$0.hasPrefix("viti-") }.sorted()
        let seed = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/seed")) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        return top.map { "examples/" + $0 } + seed.map { "examples/seed/" + $0 }
    }()

    @Test func everyExampleIsCovered() {
        #expect(Self.examples.count >= 14)
        #expect(Self.examples.contains("examples/seed/stm32f4-qemu.yaml"))
    }

    /// Golden/<example>.yaml: what `vtarget render --for kubernetes -f examples/X` prints.
    @Test(arguments: examples)
    func exampleGolden(_ path: String) throws {
        let text = try String(contentsOfFile: repoRoot + "/" + path, encoding: .utf8)
        let objects = try renderKube(text, path: path)
        let golden = path.replacingOccurrences(of: "examples/", with: "").replacingOccurrences(of: "/", with: "-")
        try checkKubeGolden(golden, try KubeOutput.text(objects, .yaml))
        // Every name a DNS-1123 label, every object labelled and annotated.
        for o in try jsonObjects(objects) {
            let name = try #require(o[path: "metadata", "name"] as? String)
            #expect(Names.isDNSLabel(name), "\(name)")
            #expect(o[path: "metadata", "labels", KubeLabels.managedBy] as? String == "vtarget")
            #expect((o[path: "metadata", "annotations", KubeLabels.source] as? String)?.hasPrefix(path + ":") == true)
        }
    }

    @Test func outputIsStableAndParses() throws {
        let text = try String(contentsOfFile: repoRoot + "/examples/lm3s6965evb-sidecars.yaml", encoding: .utf8)
        let a = try KubeOutput.text(renderKube(text), .yaml)
        #expect(a == (try KubeOutput.text(renderKube(text), .yaml)))
        let docs = try YAMLParser.parse(a, file: "out.yaml")
        #expect(docs.map { $0.root["kind"]?.scalar } == ["ConfigMap", "Job"])
    }

    static let target = """
        apiVersion: qemu.kubetarget.dev/v1alpha1
        kind: QemuVirtualTarget
        metadata: {name: board, labels: {team: hil}}
        spec:
          qemuConfig:
            machine: lm3s6965evb
            drives: [{name: firmware, type: pflash, source: {configMap: {name: fw}}}]
            devices: [{name: uart0, type: serial, rfc2217: 4001}]
          readiness: {device: uart0, pattern: ready, timeout: 20s}
        """

    /// No tests, no TTL: a Pod whose readiness is the file the run writes once Ready.
    @Test func plainTargetIsAPod() throws {
        let objects = try jsonObjects(renderKube(Self.target))
        #expect(objects.map { $0["kind"] as? String } == ["ConfigMap", "Pod"])
        let pod = objects[1]
        let c = try #require((pod[path: "spec", "containers"] as? [[String: Any]])?.first)
        #expect(c["name"] as? String == "vtarget" && c["image"] as? String == testImage)
        let script = try #require((c["command"] as? [String])?.last)
        #expect(script.contains("exec vtarget run -f /etc/vtarget/spec.yaml -f /run/vtarget/configmaps -- sh -c"))
        #expect(script.contains("vtarget create configmap fw -n default \"$@\" --dry-run=client -o yaml > /run/vtarget/configmaps/fw.yaml"))
        #expect(c[path: "readinessProbe", "exec", "command"] as? [String] == ["test", "-e", "/run/vtarget/ready"])
        #expect(c[path: "ports", "0", "name"] as? String == "rfc-uart0")
        #expect(c[path: "ports", "0", "containerPort"] as? Int == 4001)
        #expect(c["resources"] == nil, "tcg: no /dev/kvm asked for")
        #expect(pod[path: "spec", "restartPolicy"] as? String == "Never")
        #expect(pod[path: "metadata", "labels", "team"] as? String == "hil")
        #expect(pod[path: "metadata", "annotations", KubeLabels.madeFrom] as? String == "QemuVirtualTarget/board")
        let volumes = try #require(pod[path: "spec", "volumes"] as? [[String: Any]])
        #expect(volumes.compactMap { $0[path: "configMap", "name"] as? String } == ["board-spec", "fw"])
        let spec = try #require(objects[0][path: "data", "spec.yaml"] as? String)
        #expect(spec.contains("kind: QemuVirtualTarget") && spec.contains("rfc2217: 4001"))
    }

    /// Sidecars become containers: a test sidecar a regular container whose
    /// exit decides the Job, vtarget and helpers native sidecars that start first.
    @Test func sidecarsAreContainersOfTheJob() throws {
        let text = Self.target + """

              sidecars:
                - {name: check, image: ghcr.io/x/agent:1, role: test, command: [pytest, -q], env: [{name: LEVEL, value: "2"}]}
                - {name: watch, role: helper, command: [sleep, "600"]}
            """
        let objects = try jsonObjects(renderKube(text))
        #expect(objects.map { $0["kind"] as? String } == ["ConfigMap", "Job"])
        let job = objects[1]
        #expect(job[path: "spec", "backoffLimit"] as? Int == 0)
        #expect(job[path: "spec", "activeDeadlineSeconds"] as? Int == 20 + 30 + 1800)
        let pod = try #require(job[path: "spec", "template", "spec"] as? [String: Any])
        let inits = try #require(pod["initContainers"] as? [[String: Any]])
        #expect(inits.map { $0["name"] as? String } == ["vtarget", "watch"])
        #expect(inits.allSatisfy { $0["restartPolicy"] as? String == "Always" })
        #expect(inits[0][path: "startupProbe", "failureThreshold"] as? Int == 25)
        let tests = try #require(pod["containers"] as? [[String: Any]])
        #expect(tests.map { $0["name"] as? String } == ["check"])
        #expect(tests[0]["image"] as? String == "ghcr.io/x/agent:1")
        #expect((tests[0]["command"] as? [String])?.suffix(2) == ["pytest", "-q"])
        #expect(tests[0][path: "env", "0", "name"] as? String == "LEVEL")
        #expect(inits[1]["image"] as? String == testImage, "a sidecar without an image runs in vtarget's")
        let spec = try #require(objects[0][path: "data", "spec.yaml"] as? String)
        #expect(!spec.contains("sidecars"), "the Pod runs the sidecars, not vtarget run")
    }

    @Test func declarativeTestsAndTTLMakeAJob() throws {
        let tests = Self.target + """

              tests:
                - name: pong
                  steps: [{send: "ping\\r"}, {expect: pong, timeout: 5s}]
            """
        let job = try jsonObjects(renderKube(tests))[1]
        #expect(job["kind"] as? String == "Job")
        #expect(job[path: "spec", "activeDeadlineSeconds"] as? Int == 20 + 30 + 5)
        let c = try #require(job[path: "spec", "template", "spec", "containers", "0"] as? [String: Any])
        #expect((c["command"] as? [String])?.last?.hasSuffix("exec vtarget run -f /etc/vtarget/spec.yaml -f /run/vtarget/configmaps") == true,
                "the run ends with the tests' verdict")
        #expect(c["readinessProbe"] == nil)
        let ttl = try jsonObjects(renderKube(Self.target + "\n  ttl: 90m\n  restartPolicy: OnFailure"))[1]
        #expect(ttl[path: "spec", "activeDeadlineSeconds"] as? Int == 5400)
        #expect(ttl[path: "spec", "template", "spec", "restartPolicy"] as? String == "OnFailure")
        #expect(ttl[path: "spec", "backoffLimit"] as? Int == 6)
    }

    @Test func kvmAsksForKubeVirtsDevice() throws {
        let text = targetYAML("vm", "machine: pc\naccel: kvm\ndevices: [{name: com1, type: serial}]")
        let c = try #require(try jsonObjects(renderKube(text))[1][path: "spec", "containers", "0"] as? [String: Any])
        #expect(c[path: "resources", "limits", "devices.kubevirt.io/kvm"] as? String == "1")
    }

    @Test func poolIsADeploymentOfMinReady() throws {
        let text = Self.target + """

            ---
            apiVersion: kubetarget.dev/v1alpha1
            kind: VirtualTargetPool
            metadata: {name: warm}
            spec: {targetRef: {name: board}, minReady: 3, maxInstances: 5}
            """
        let objects = try jsonObjects(renderKube(text))
        #expect(objects.map { $0["kind"] as? String } == ["ConfigMap", "Deployment"], "the pool's target runs only as its members")
        let d = objects[1]
        #expect(d[path: "spec", "replicas"] as? Int == 3)
        #expect(d[path: "spec", "selector", "matchLabels", KubeLabels.name] as? String == "warm")
        #expect(d[path: "spec", "template", "metadata", "labels", KubeLabels.name] as? String == "warm")
        #expect(d[path: "spec", "template", "spec", "restartPolicy"] as? String == "Always")
        #expect(d[path: "metadata", "annotations", KubeLabels.madeFrom] as? String == "VirtualTargetPool/warm, QemuVirtualTarget/board")
    }

    /// A CAN bus is a Deployment and a Service running `vtarget can serve
    /// --listen`; each member is a Pod of its own that joins it through
    /// VTARGET_REMOTE_CAN.
    @Test func canBusIsADeploymentAndAService() throws {
        let text = try String(contentsOfFile: repoRoot + "/examples/can-pair.yaml", encoding: .utf8)
        let objects = try jsonObjects(renderKube(text))
        #expect(objects.map { "\($0["kind"] as! String)/\($0[path: "metadata", "name"] as! String)" }
                == ["Deployment/can-vehicle", "Service/can-vehicle", "ConfigMap/node-a-spec", "Pod/node-a", "ConfigMap/node-b-spec", "Pod/node-b"])
        let bus = objects[0], service = objects[1]
        #expect(bus[path: "spec", "replicas"] as? Int == 1)
        #expect(bus[path: "metadata", "labels", KubeLabels.component] as? String == "can-bus")
        #expect(bus[path: "metadata", "annotations", KubeLabels.madeFrom] as? String == "QemuVirtualTarget/node-a, QemuVirtualTarget/node-b")
        let c = try #require((bus[path: "spec", "template", "spec", "containers"] as? [[String: Any]])?.first)
        #expect(c["command"] as? [String] == ["vtarget", "can", "serve", "vehicle", "-n", "default", "--listen", "0.0.0.0:29536"])
        #expect(c["image"] as? String == testImage)
        #expect(c[path: "readinessProbe", "tcpSocket", "port"] as? Int == 29536)
        #expect(c[path: "ports", "0", "containerPort"] as? Int == 29536 && c[path: "ports", "0", "name"] as? String == "socketcand")
        // The Service selects exactly the bus's Pods.
        let selector = try #require(service[path: "spec", "selector"] as? [String: String])
        #expect(selector == (bus[path: "spec", "selector", "matchLabels"] as? [String: String]))
        let template = try #require(bus[path: "spec", "template", "metadata", "labels"] as? [String: String])
        #expect(selector.allSatisfy { template[$0.key] == $0.value })
        #expect(service[path: "spec", "ports", "0", "port"] as? Int == 29536 && service[path: "spec", "ports", "0", "targetPort"] as? String == "socketcand")
        for pod in [objects[3], objects[5]] {
            let env = try #require(pod[path: "spec", "containers", "0", "env"] as? [[String: String]])
            #expect(env.contains { $0["name"] == "VTARGET_REMOTE_CAN" && $0["value"] == "vehicle=can-vehicle:29536" })
        }
        let specA = try #require(objects[2][path: "data", "spec.yaml"] as? String)
        #expect(specA.contains("name: node-a") && !specA.contains("name: node-b"))
    }

    @Test func instancesGetTheirOwnPodsAndYAML() throws {
        let objects = try jsonObjects(renderKube(nodeTargetYAML(instances: ["n1", "n2"])))
        #expect(objects.map { $0[path: "metadata", "name"] as? String } == ["n1-spec", "n1", "n2-spec", "n2"])
        let spec = try #require(objects[0][path: "data", "spec.yaml"] as? String)
        #expect(spec.contains("kind: VirtualTargetInstance") && spec.contains("name: n1") && !spec.contains("name: n2"))
    }

    @Test func inputConfigMapsAreKept() throws {
        let text = Self.target + "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: fw}\nbinaryData: {fw.elf: f38AAQ==}\ndata: {note: hi}"
        let cm = try jsonObjects(renderKube(text))[0]
        #expect(cm[path: "metadata", "name"] as? String == "fw")
        #expect(cm[path: "binaryData", "fw.elf"] as? String == "f38AAQ==")
        #expect(cm[path: "data", "note"] as? String == "hi")
    }

    /// What a cluster cannot give: files beside the YAML; names that collide.
    @Test func refusals() throws {
        let file = targetYAML("t", "machine: lm3s6965evb\ndrives: [{name: fw, type: kernel, source: {file: fw.elf}}]")
        #expect { try renderKube(file) } throws: { e in
            (e as? DiagnosticError)?.description.contains("in.yaml:7:") == true
                && (e as? DiagnosticError)?.description.contains("source.file: a file beside the YAML is not on a cluster") == true
        }
        let clash = targetYAML("can-b", "machine: lm3s6965evb") + "\n---\n" + targetYAML("x", "machine: stm32vldiscovery\ndevices: [{name: c, type: can, bus: b}]")
            + "\n---\n" + targetYAML("y", "machine: stm32vldiscovery\ndevices: [{name: c, type: can, bus: b}]")
        #expect { try renderKube(clash) } throws: { e in
            (e as? DiagnosticError)?.description.contains(#"in.yaml:10:18: error: metadata.name: CAN bus "b" would make objects named "can-b" in namespace default, as QemuVirtualTarget "can-b" (in.yaml:3:18) does"#) == true
        }
        // A pool's Deployment and a bus's Deployment of one name.
        let pool = targetYAML("t", "machine: stm32vldiscovery\ndevices: [{name: c, type: can, bus: p}]")
            + "\n---\napiVersion: kubetarget.dev/v1alpha1\nkind: VirtualTargetPool\nmetadata: {name: can-p}\nspec: {targetRef: {kind: QemuVirtualTarget, name: t}, minReady: 1}"
        #expect { try renderKube(pool) } throws: { e in
            (e as? DiagnosticError)?.description.contains(#"CAN bus "p" would make objects named "can-p" in namespace default, as VirtualTargetPool "can-p""#) == true
        }
    }

    /// vtarget keeps any string labels; the Pod carries only those Kubernetes accepts.
    @Test func onlyKubernetesLabelsGoOnThePod() throws {
        let text = """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata:
              name: t
              labels: {team: hil, example.com/tier: "1", "bad key": x, spaced: "a b", empty: "", /x: y, "A.b/c": d}
            spec:
              qemuConfig: {machine: lm3s6965evb}
            """
        let labels = try #require(try jsonObjects(renderKube(text))[1][path: "metadata", "labels"] as? [String: String])
        #expect(labels.keys.sorted() == ["app.kubernetes.io/component", "app.kubernetes.io/managed-by", "app.kubernetes.io/name", "empty", "example.com/tier", "team"])
    }

    @Test func namesStayDNSLabels() {
        let long = String(repeating: "a", count: 60)
        let n = KubeNames.label(long, "spec")
        #expect(Names.isDNSLabel(n) && n.count <= 63 && n == KubeNames.label(long, "spec"))
        #expect(KubeNames.label(long, "spec") != KubeNames.label(long + "b", "spec"))
        #expect(KubeNames.label("board", "spec") == "board-spec")
        #expect(KubeNames.port("rfc", "uart0") == "rfc-uart0")
        let p = KubeNames.port("rfc", "a-very-long-device")
        #expect(p.count <= 15 && Names.isDNSLabel(p) && !p.contains("--"))
        #expect(KubeNames.port("rfc", "a--b") != "rfc-a--b")
    }
}
