import Foundation
import Testing
import TestSupport

/// `vtarget crds` and `vtarget render --for kubernetes` against real
/// Kubernetes schemas (PyPI kubernetes-validate, offline, Kubernetes
/// 1.33) and the emitted CRD schemas
/// against the local validator (PyPI jsonschema), on every example and
/// every bad input.
@Suite(.serialized) struct KubeRenderSchemaTests {
    static let kubernetesVersion = "1.33.0"
    static let badInputDir = repoRoot + "/Tests/TargetSpecTests/BadInputs"

    static let examples: [String] = {
        let dir = repoRoot + "/examples"
        let top = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") && !$0.hasPrefix("kubevirt") && !$0.hasPrefix("viti-") }.sorted()
        return top.map { "examples/" + $0 } + ["examples/seed/stm32f4-qemu.yaml"]
    }()
    static let badInputs: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: badInputDir)) ?? [])
        .filter { $0.hasSuffix(".yaml") }.sorted().map { "Tests/TargetSpecTests/BadInputs/" + $0 }

    /// The bad inputs the CRD schema accepts although vtarget refuses them,
    /// each because the rule cannot be a schema's. This list is the only place
    /// such cases are allowed, and each must really disagree.
    static let beyondSchema: [String: String] = [
        "arch-mismatch.yaml": "the machine profile (machines/*.yaml) decides which architectures a machine has",
        "bad-cpu.yaml": "the machine profile decides which CPUs a machine allows",
        "disk-on-mcu.yaml": "the machine profile decides whether a machine has a disk bus",
        "kvm-on-mcu.yaml": "the machine profile decides which accelerators a machine runs under",
        "memory-out-of-range.yaml": "the machine profile decides a machine's memory bounds",
        "serial-index-out-of-range.yaml": "the machine profile decides how many UARTs a machine has",
        "smp-on-mcu.yaml": "the machine profile decides how many CPUs a machine has",
        "unknown-machine.yaml": "the machine catalog (machines/ and ~/.config/vtarget/machines) is not in the CRD",
        "bad-readiness-regex.yaml": "whether a pattern compiles is the regex engine's (Swift's Regex), not a schema rule",
        "readiness-unknown-device.yaml": "a reference from readiness.device to a device of qemuConfig.devices (cross-field)",
        "escaping-file.yaml": "a file path resolved against the YAML file's directory (the file system)",
        "extra-args-refused.yaml": "refused unless the --allow-extra-args flag is given (a command-line flag)",
        "hostpath-refused.yaml": "refused unless the --allow-host-paths flag is given (a command-line flag)",
        "instance-named-like-a-target.yaml": "two resources that would run as one instance name (across resources)",
        "duplicate-resource.yaml": "the same object twice in one input; a cluster applies the second over the first",
        "duplicate-device.yaml": "x-kubernetes-list-type: map makes the API server refuse two devices of one name; JSON Schema has no such keyword",
        "empty-disk-on-pflash.yaml": "a CEL rule (x-kubernetes-validations) the API server runs; JSON Schema does not run CEL",
        "pool-max-below-min.yaml": "a CEL rule (x-kubernetes-validations) the API server runs; JSON Schema does not run CEL",
    ]

    /// Reads the CRDs and each input file; says VALID or INVALID for each
    /// file as a cluster would see it: YAML read strictly (duplicate keys and
    /// unknown tags refused), our kinds against the CRD schema as
    /// `kubectl --validate=strict` does (unknown fields refused), ConfigMaps
    /// against Kubernetes' own schema and base64, other kinds unknown.
    static let schemaCheck = #"""
    import base64, binascii, json, sys, yaml, jsonschema, kubernetes_validate

    class StrictLoader(yaml.SafeLoader):
        pass
    def no_duplicates(loader, node, deep=False):
        keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
        dup = [k for k in keys if keys.count(k) > 1]
        if dup:
            raise yaml.constructor.ConstructorError(None, None, "duplicate key %r" % dup[0], node.start_mark)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)
    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)

    def strict(schema, path=""):
        """The CRD schema as JSON Schema under strict field validation."""
        s = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
        if schema.get("x-kubernetes-int-or-string"):
            s["type"] = ["integer", "string"]
        if "properties" in s:
            s["properties"] = {k: strict(v, path + "." + k) for k, v in s["properties"].items()}
            if path != ".metadata" and not schema.get("x-kubernetes-preserve-unknown-fields"):
                s["additionalProperties"] = False
        if "items" in s:
            s["items"] = strict(s["items"], path + "[]")
        for key in ("oneOf", "allOf", "anyOf"):
            if key in s:
                s[key] = [strict(v, path) for v in s[key]]
        if "not" in s:
            s["not"] = strict(s["not"], path)
        return s

    crds = {}
    for crd in yaml.safe_load_all(open(sys.argv[1])):
        spec = crd["spec"]
        for v in spec["versions"]:
            crds[(spec["group"] + "/" + v["name"], spec["names"]["kind"])] = strict(v["schema"]["openAPIV3Schema"])

    def verdict(path):
        try:
            docs = [d for d in yaml.load_all(open(path), Loader=StrictLoader) if d is not None]
        except yaml.YAMLError as e:
            return "INVALID: YAML: " + str(e).splitlines()[0]
        for d in docs:
            if not isinstance(d, dict):
                return "INVALID: not an object"
            key = (d.get("apiVersion"), d.get("kind"))
            if key in crds:
                try:
                    jsonschema.validate(d, crds[key])
                except jsonschema.ValidationError as e:
                    return "INVALID: %s: %s" % ("/".join(map(str, e.absolute_path)), e.message)
            elif key == ("v1", "ConfigMap"):
                try:
                    kubernetes_validate.validate(d, sys.argv[2], strict=True)
                except kubernetes_validate.ValidationError as e:
                    return "INVALID: ConfigMap: " + str(e)
                for k, v in (d.get("binaryData") or {}).items():
                    try:
                        base64.b64decode(v, validate=True)
                    except (binascii.Error, TypeError):
                        return "INVALID: binaryData.%s: not base64" % k
            else:
                return "INVALID: no %s in %s on the cluster" % (key[1], key[0])
        return "VALID"

    print(json.dumps({p: verdict(p) for p in sys.argv[3:]}))
    """#

    func python(_ args: [String]) throws -> RunResult {
        try finish(launch(args, runtime: "/nonexistent", executable: repoRoot + "/.venv/bin/python"))
    }

    func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "vt-kube-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func crdsFile(_ dir: String) throws -> String {
        let r = try vt(["crds", "-o", "yaml"], runtime: dir)
        #expect(r.code == 0, "\(r.stderr)")
        let path = dir + "/crds.yaml"
        try r.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func venvHasTheValidators() throws {
        let r = try python(["-c", "import jsonschema, kubernetes_validate"])
        #expect(r.code == 0, "run scripts/setup.sh: it adds kubernetes-validate and jsonschema to .venv\n\(r.stderr)")
    }

    /// Each backend's flags are refused with the other (exit 2), and `--for qemu` stays the default.
    @Test func flagsBelongToTheirBackend() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let example = "examples/lm3s6965evb.yaml"
        for (args, message) in [
            (["-o", "json"], "-o/--output is for --for kubernetes"),
            (["--image", "x:1"], "--image is for --for kubernetes"),
            (["--for", "kubernetes", "--format", "shell"], "--format is for --for qemu"),
            (["--for", "kubernetes", "--no-sandbox"], "--no-sandbox is for --for qemu"),
            (["--for", "kubernetes", "--image", "a b"], "--image: expected an image reference"),
            (["--for", "helm"], "helm"),
        ] {
            let r = try vt(["render", "-f", example] + args, runtime: dir)
            #expect(r.code == 2 && r.stderr.contains(message), "\(args): \(r.code) \(r.stderr)")
        }
        let image = try vt(["render", "--for", "kubernetes", "-f", example, "--image", "registry.local/vt:9"], runtime: dir)
        #expect(image.code == 0 && image.stdout.contains("image: registry.local/vt:9") && !image.stdout.contains("localhost/vtarget"))
        let byDefault = try vt(["render", "--for", "kubernetes", "-f", example], runtime: dir)
        #expect(byDefault.stdout.contains("image: localhost/vtarget:0.1.0"), "\(byDefault.stdout)")
        let vm = try vt(["render", "--for", "kubernetes", "-f", "examples/kubevirt/vm-cirros.yaml"], runtime: dir)
        #expect(vm.code == 0 && vm.stdout.contains("kind: VirtualMachine") && !vm.stdout.contains("localhost/vtarget"), "\(vm.stderr)")
    }

    /// The VM examples, KubeVirt's and Viti's, and the three Machines of the Viti seed.
    static let vmExamples: [String] = {
        let dir = repoRoot + "/examples/kubevirt"
        let kubevirt = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        return kubevirt.map { "examples/kubevirt/" + $0 } + ["examples/kubevirt-vm.yaml", "examples/kubevirt-vm-pool.yaml", "examples/viti-machine.yaml", "examples/viti-machine-pool.yaml"]
    }()

    /// KubeVirt's OpenAPI (a vendored excerpt of its swagger.json, see the
    /// file's `x-source`) under strict field validation: kubernetes-validate
    /// knows only Kubernetes' own kinds.
    static let kubevirtCheck = #"""
    import json, sys, yaml, jsonschema, kubernetes_validate
    api = json.load(open(sys.argv[1]))
    def strict(s):
        if isinstance(s, dict):
            out = {k: strict(v) for k, v in s.items()}
            if "properties" in s and "additionalProperties" not in s:
                out["additionalProperties"] = False
            return out
        if isinstance(s, list):
            return [strict(v) for v in s]
        return s
    definitions = strict(api["definitions"])
    roots = {("kubevirt.io/v1", "VirtualMachine"): "v1.VirtualMachine",
             ("kubevirt.io/v1", "VirtualMachineInstance"): "v1.VirtualMachineInstance",
             ("pool.kubevirt.io/v1beta1", "VirtualMachinePool"): "v1beta1.VirtualMachinePool"}
    for kind in ("VirtualMachineInstancetype", "VirtualMachineClusterInstancetype", "VirtualMachinePreference", "VirtualMachineClusterPreference"):
        roots[("instancetype.kubevirt.io/v1beta1", kind)] = "v1beta1." + kind
    bad, counts = [], {}
    for path in sys.argv[3:]:
        top = json.load(open(path))
        for d in (top["items"] if top.get("kind") == "List" else [top]):
            key = (d.get("apiVersion"), d.get("kind"))
            counts[key[1]] = counts.get(key[1], 0) + 1
            try:
                if key in roots:
                    jsonschema.Draft4Validator({"definitions": definitions, "$ref": "#/definitions/" + roots[key]}).validate(d)
                else:
                    kubernetes_validate.validate(d, sys.argv[2], strict=True)
            except Exception as e:
                bad.append("%s %s/%s: %s" % (path, key[1], d["metadata"]["name"], str(e).splitlines()[0]))
    print(json.dumps({"bad": bad, "counts": counts}))
    """#

    /// Every object rendered from a VM example is valid: KubeVirt's kinds
    /// against KubeVirt's OpenAPI, the PVCs against Kubernetes'.
    @Test func vmManifestsPassTheirSchemas() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var files: [String] = []
        for (n, example) in Self.vmExamples.enumerated() {
            let withType = example.hasSuffix("vm-cirros-csmall.yaml") ? ["-f", "examples/kubevirt/csmall.yaml"] : []
            let r = try vt(["render", "--for", "kubernetes", "-f", example, "-o", "json", "--allow-host-paths"] + withType, runtime: dir)
            #expect(r.code == 0, "\(example): \(r.stderr)")
            let path = dir + "/vm-\(n).json"
            try r.stdout.write(toFile: path, atomically: true, encoding: .utf8)
            files.append(path)
        }
        let r = try python(["-c", Self.kubevirtCheck, repoRoot + "/Tests/KubeRenderTests/Golden/kubevirt-openapi.json", Self.kubernetesVersion] + files)
        #expect(r.code == 0, "\(r.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect((result["bad"] as? [String]) == [], "\(result["bad"] ?? "")")
        let counts = result["counts"] as? [String: Int] ?? [:]
        #expect((counts["VirtualMachine"] ?? 0) >= 5 && (counts["VirtualMachineInstance"] ?? 0) >= 9 && (counts["PersistentVolumeClaim"] ?? 0) >= 2
                && (counts["VirtualMachinePool"] ?? 0) == 2, "\(counts)")
        // The schema check is not vacuous: an unknown field and a wrong type are caught.
        let broken = dir + "/broken.json"
        try #"{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "b"}, "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}, "cpu": {"cores": "two"}}, "colour": 1}}}}"#
            .write(toFile: broken, atomically: true, encoding: .utf8)
        let b = try python(["-c", Self.kubevirtCheck, repoRoot + "/Tests/KubeRenderTests/Golden/kubevirt-openapi.json", Self.kubernetesVersion, broken])
        #expect(b.stdout.contains("colour") || b.stdout.contains("two"), "\(b.stdout)\(b.stderr)")
    }

    /// Every CRD and every rendered object is valid Kubernetes, strictly (no unknown fields).
    @Test func crdsAndRenderedManifestsPassKubernetesValidate() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var files = [try crdsFile(dir)]
        for (n, example) in Self.examples.enumerated() {
            for format in ["yaml", "json"] {
                let r = try vt(["render", "--for", "kubernetes", "-f", example, "-o", format], runtime: dir)
                #expect(r.code == 0, "\(example): \(r.stderr)")
                let path = dir + "/render-\(n).\(format)"
                try r.stdout.write(toFile: path, atomically: true, encoding: .utf8)
                files.append(path)
            }
        }
        // kubernetes-validate reads one object per JSON file: split the List.
        let r = try python(["-c", """
            import json, sys, yaml, kubernetes_validate
            bad = []
            for path in sys.argv[2:]:
                if path.endswith(".json"):
                    top = json.load(open(path))
                    docs = top["items"] if top.get("kind") == "List" else [top]
                else:
                    docs = [d for d in yaml.safe_load_all(open(path)) if d]
                for d in docs:
                    try:
                        kubernetes_validate.validate(d, sys.argv[1], strict=True)
                    except Exception as e:
                        bad.append("%s %s/%s: %s" % (path, d.get("kind"), d["metadata"]["name"], e))
            print("\\n".join(bad) or "ok")
            sys.exit(1 if bad else 0)
            """, Self.kubernetesVersion] + files)
        #expect(r.code == 0, "\(r.stdout)\(r.stderr)")
    }

    /// The emitted schema and the local validator agree on every example
    /// and every bad input, except those `beyondSchema` lists with why.
    @Test func crdSchemaAgreesWithTheLocalValidator() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let crds = try crdsFile(dir)
        let inputs = Self.examples + Self.badInputs
        let r = try python(["-c", Self.schemaCheck, crds, Self.kubernetesVersion] + inputs)
        #expect(r.code == 0, "\(r.stderr)")
        let verdicts = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: String])
        #expect(verdicts.count == inputs.count)
        for input in inputs {
            let local = try vt(["render", "--for", "kubernetes", "-f", input], runtime: dir)
            #expect(local.code == 0 || local.code == 2, "\(input): \(local.stderr)")
            let schema = verdicts[input] ?? "missing"
            let schemaValid = schema == "VALID"
            let name = (input as NSString).lastPathComponent
            if let why = Self.beyondSchema[name] {
                #expect(local.code == 2 && schemaValid, "\(name) is listed as beyond the schema (\(why)) but local exit \(local.code), schema: \(schema)")
            } else {
                #expect((local.code == 0) == schemaValid, "\(input): local exit \(local.code) (\(local.stderr.prefix(300))), schema: \(schema)")
            }
        }
        #expect(Self.badInputs.count >= 40)
        #expect(Set(Self.beyondSchema.keys).isSubset(of: Set(Self.badInputs.map { ($0 as NSString).lastPathComponent })))
    }

    static func shq(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// The rendered Pod of the sidecars example, run as a kubelet would lay
    /// it out but without a cluster: in a private mount namespace, its spec
    /// ConfigMap at /etc/vtarget/spec.yaml, the firmware ConfigMap as the
    /// kubelet writes a ConfigMap volume (`..data` and symlinked keys),
    /// /run/vtarget shared. The vtarget container's command boots the target
    /// and the test sidecar's command, started at once, waits for Ready and
    /// talks to the UART through the published endpoints.
    @Test func renderedPodRunsItsTestSidecar() throws {
        let firmwareYAML = firmware + "/lm3s6965evb-firmware.yaml"
        guard FileManager.default.fileExists(atPath: firmwareYAML) else {
            Issue.record("run `make firmware` first: \(firmwareYAML) is missing")
            return
        }
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try vt(["render", "--for", "kubernetes", "-f", "examples/lm3s6965evb-sidecars.yaml", "-o", "json"], runtime: dir)
        #expect(r.code == 0, "\(r.stderr)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let items = try #require(list["items"] as? [[String: Any]])
        let spec = try #require((items[0]["data"] as? [String: String])?["spec.yaml"])
        let pod = try #require(((items[1]["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        let vtargetCommand = try #require(((pod["initContainers"] as? [[String: Any]])?.first)?["command"] as? [String])
        let test = try #require((pod["containers"] as? [[String: Any]])?.first)
        let testCommand = try #require(test["command"] as? [String])
        let testEnv = (test["env"] as? [[String: String]] ?? []).map { "\($0["name"]!)=\($0["value"]!)" }

        let upper = dir + "/etc-upper", work = dir + "/etc-work"
        try FileManager.default.createDirectory(atPath: upper + "/vtarget", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try spec.write(toFile: upper + "/vtarget/spec.yaml", atomically: true, encoding: .utf8)
        // The kubelet's layout of a ConfigMap volume.
        let layout = try python(["-c", """
            import base64, os, sys, yaml
            cm = yaml.safe_load(open(sys.argv[1]))
            root = os.path.join(sys.argv[2], cm["metadata"]["name"])
            ts = os.path.join(root, "..2026_11_30_00_00_00.000000001")
            os.makedirs(ts)
            os.symlink(os.path.basename(ts), os.path.join(root, "..data"))
            for k, v in (cm.get("binaryData") or {}).items():
                open(os.path.join(ts, k), "wb").write(base64.b64decode(v))
                os.symlink(os.path.join("..data", k), os.path.join(root, k))
            for k, v in (cm.get("data") or {}).items():
                open(os.path.join(ts, k), "w").write(v)
                os.symlink(os.path.join("..data", k), os.path.join(root, k))
            """, firmwareYAML, upper + "/vtarget/configmaps"])
        #expect(layout.code == 0, "\(layout.stderr)")

        let script = """
            set -e
            mount -t overlay overlay -o lowerdir=/etc,upperdir=\(upper),workdir=\(work) /etc
            mount -t tmpfs tmpfs /run
            mkdir -p /run/vtarget
            export PATH=\(repoRoot)/.build/debug:$PATH VTARGET_RUNTIME_DIR=/run/vtarget/runtime
            \(vtargetCommand.map(Self.shq).joined(separator: " ")) > \(dir)/vtarget.log 2>&1 &
            vtarget_pid=$!
            set +e
            env \(testEnv.map(Self.shq).joined(separator: " ")) timeout 120 \(testCommand.map(Self.shq).joined(separator: " "))
            rc=$?
            cat /run/vtarget/endpoints.env
            kill -TERM $vtarget_pid; wait $vtarget_pid
            exit $rc
            """
        let run = try finish(launch(["-m", "sh", "-c", script], runtime: dir, executable: "/usr/bin/unshare"))
        let log = (try? String(contentsOfFile: dir + "/vtarget.log", encoding: .utf8)) ?? ""
        #expect(run.code == 0, "test sidecar: \(run.stdout)\(run.stderr)\nvtarget container:\n\(log)")
        #expect(run.stdout.contains("pong from lm3s6965evb at level 2"), "\(run.stdout)")
        #expect(run.stdout.contains("export VTARGET_SERIAL_UART0='/run/vtarget/runtime/"), "\(run.stdout)")
    }
}
