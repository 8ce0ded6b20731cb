import Foundation
import MachineCatalog
import ResourceKit
import TestSupport
import Testing
import YAMLTree
@testable import TargetSpec

func decode(_ text: String, file: String = "in.yaml", options: DecodeOptions = DecodeOptions()) throws -> DecodedResources {
    try ResourceDecoder(catalog: builtInCatalog(), options: options)
        .decode([SourceFile(path: file, directory: "/work/proj", bytes: Array(text.utf8))])
}

/// Every file in BadInputs/ starts with `# expect: <line>:<col> <field>: <message start>`
/// lines; each must appear among the errors, exactly positioned. Errors come
/// from decoding, or, for input that decodes, from working out its instances.
@Suite struct BadInputTests {
    static let corpus: [String] = (try? FileManager.default.contentsOfDirectory(atPath: repoRoot + "/Tests/TargetSpecTests/BadInputs"))?.filter { $0.hasSuffix(".yaml") }.sorted() ?? []

    @Test func corpusIsThere() {
        #expect(Self.corpus.count >= 20)
    }

    @Test(arguments: corpus)
    func refusedWithPosition(_ name: String) throws {
        let path = repoRoot + "/Tests/TargetSpecTests/BadInputs/" + name
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let expectations = text.split(separator: "\n").filter { $0.hasPrefix("# expect: ") }.map { $0.dropFirst("# expect: ".count) }
        #expect(!expectations.isEmpty, "\(name) has no # expect: line")
        do {
            // What decodes must still yield instances that can run.
            _ = try Workload.instances(from: decode(text, file: name).resources)
            Issue.record("\(name) was accepted")
        } catch let e as DiagnosticError {
            let rendered = e.errors.map(\.description)
            for x in expectations {
                let want = "\(name):" + x.replacingOccurrences(of: " ", with: ": error: ", options: [], range: x.range(of: " "))
                #expect(rendered.contains { $0.hasPrefix(want) }, "\(name): expected \(want)\n got:\n\(rendered.joined(separator: "\n"))")
            }
        }
    }

    @Test func lenientTurnsUnknownFieldsIntoWarnings() throws {
        let text = """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: t}
            spec:
              qemuConfig: {machine: lm3s6965evb, colour: blue}
            """
        #expect(throws: DiagnosticError.self) { try decode(text) }
        let ok = try decode(text, options: DecodeOptions(strict: false))
        #expect(ok.warnings.map(\.description).contains { $0.contains("5:38: warning: spec.qemuConfig.colour: unknown field \"colour\"") })
    }

    @Test func seedExampleIsAcceptedWithWarnings() throws {
        let text = try String(contentsOfFile: repoRoot + "/examples/seed/stm32f4-qemu.yaml", encoding: .utf8)
        let r = try decode(text, file: "seed.yaml")
        guard case .target(let t) = r.resources[0] else { Issue.record("not a target"); return }
        #expect(t.qemu.profileName == "stm32-p103")
        #expect(t.qemu.devices.map(\.name) == ["uart0", "can0"])
        #expect(t.qemu.devices[1].kind == .can(bus: "default", uart: nil))
        #expect(r.warnings.map(\.description).contains("seed.yaml:11:13: warning: spec.qemuConfig.memory: 256M ignored: stm32-p103 has a fixed 8Ki of RAM"))
    }

    /// Shipped examples can be applied side by side: no two run instances of
    /// one name (two-targets.yaml's instances once took can-pair.yaml's
    /// targets' names). Examples that define the same resource are versions of
    /// one target, applied instead of each other, so those pairs are skipped.
    @Test func shippedExamplesNameEachInstanceOnce() throws {
        let dir = repoRoot + "/examples"
        let files = try FileManager.default.subpathsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 10)
        let decoder = ResourceDecoder(catalog: try builtInCatalog(), options: DecodeOptions(allowHostPaths: true, allowExtraArgs: true))
        let each = try files.map { f in
            try decoder.decode([SourceFile(path: f, directory: dir, bytes: Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))))], resolvingVMs: false).resources
        }
        func keys(_ rs: [Resource]) -> Set<String> { Set(rs.map { "\($0.kind)/\($0.metadata.namespace)/\($0.metadata.name)" }) }
        var pairs = 0
        for i in each.indices {
            for j in each.indices where i < j && keys(each[i]).isDisjoint(with: keys(each[j])) {
                pairs += 1
                do {
                    _ = try Workload.instances(from: each[i] + each[j])
                } catch {
                    // Their firmware ConfigMaps come from make firmware, so those are missing here.
                    let clashes = error.errors.filter { !$0.message.contains("is not among the inputs") }
                    #expect(clashes.isEmpty, "\(files[i]) + \(files[j]): \(clashes)")
                }
            }
        }
        #expect(pairs >= 30)
    }

    @Test func quantitiesAndDurations() throws {
        #expect(Quantity.parseBytes("256M") == 256_000_000)
        #expect(Quantity.parseBytes("256Mi") == 256 << 20)
        #expect(Quantity.parseBytes("1Gi") == 1 << 30)
        #expect(Quantity.parseBytes("4096") == 4096)
        #expect(Quantity.parseBytes("12Q") == nil)
        #expect(Quantity.parseBytes("-1Mi") == nil)
        #expect(Quantity.parseDuration("1h30m") == 5400)
        #expect(Quantity.parseDuration("500ms") == 0.5)
        #expect(Quantity.parseDuration("10") == nil)
        #expect(Quantity.parseDuration("5x") == nil)
        // Bounded: a year of seconds and 64Ti of bytes, beyond which conversions to integers once trapped.
        #expect(Quantity.parseDuration("8760h") == 31_536_000)
        #expect(Quantity.parseDuration("8760h1ms") == nil)
        #expect(Quantity.parseDuration("99999999999999999999999h") == nil)
        #expect(Quantity.parseDuration(String(repeating: "9", count: 400) + "s") == nil, "Double overflows to infinity")
        #expect(throws: Quantity.Problem(description: "99999999999999999999999h is above the maximum of 8760h (a year)")) {
            try Quantity.duration("99999999999999999999999h")
        }
        #expect(Quantity.parseDuration("0s") == nil)
        #expect(try Quantity.duration("0s", allowZero: true) == 0)
        #expect(try Quantity.duration("0", allowZero: true) == 0)
        #expect(Quantity.parseBytes("64Ti") == 64 << 40)
        #expect(Quantity.parseBytes("65Ti") == nil)
        #expect(Quantity.parseBytes("18446744073709551615") == nil)
        #expect(Quantity.parseBytes("99999999999999999999999") == nil)
        #expect(throws: Quantity.Problem(description: "99999999999999999999Ti is above the maximum of 64Ti")) {
            try Quantity.bytes("99999999999999999999Ti")
        }
        #expect(Quantity.parseBytes("0") == nil)
    }

    /// A kind in the registry that the decoder cannot read would be listed by
    /// `get` but refused by `apply`.
    @Test func everyRegisteredKindHasADecoder() {
        for k in KindRegistry.builtIn.kinds {
            #expect(ResourceDecoder.decoders[k.kind] != nil, "\(k.kind)")
            #expect(ResourceDecoder.apiVersions[k.kind] == k.apiVersion, "\(k.kind)")
        }
        #expect(ResourceDecoder.decoders.count == KindRegistry.builtIn.kinds.count)
    }

    @Test func dnsLabels() {
        #expect(Names.isDNSLabel("stm32f4-qemu"))
        #expect(!Names.isDNSLabel("Stm32"))
        #expect(!Names.isDNSLabel("-a"))
        #expect(!Names.isDNSLabel("a,b"))
        #expect(!Names.isDNSLabel(String(repeating: "a", count: 64)))
    }

    @Test func relativePathsStayInside() {
        #expect(PathRules.resolveRelative("fw/a.elf", in: "/p/q") == "/p/q/fw/a.elf")
        #expect(PathRules.resolveRelative("./a/../b.elf", in: "/p") == "/p/b.elf")
        #expect(PathRules.resolveRelative("../x.elf", in: "/p") == nil)
        #expect(PathRules.resolveRelative("a/../../x", in: "/p") == nil)
        #expect(PathRules.resolveRelative("/etc/passwd", in: "/p") == nil)
        #expect(PathRules.resolveRelative("a//b/", in: "/") == "/a/b")
        #expect(PathRules.resolveRelative("a", in: "/p/./q/../") == "/p/a")
        #expect(PathRules.resolveRelative("a/..", in: "/p") == nil)
        #expect(PathRules.normalize("/") == "/")
        #expect(PathRules.normalize("//a/./b/../c/") == "/a/c")
        #expect(PathRules.normalize("/../..") == "/")
        #expect(PathRules.normalize("a/b") == "/a/b")
    }

    @Test func instanceLifecycleWinsAndConfigMapKeys() throws {
        let text = """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: fw}
            data: {a.bin: "xyz"}
            ---
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: t}
            spec:
              ttl: 30m
              qemuConfig:
                machine: lm3s6965evb
                drives: [{name: firmware, type: pflash, source: {configMap: {name: fw}}}]
                devices: [{name: uart0, type: serial}]
            ---
            apiVersion: kubetarget.dev/v1alpha1
            kind: VirtualTargetInstance
            metadata: {name: t-1}
            spec:
              targetRef: {kind: QemuVirtualTarget, name: t}
              ttl: 15m
              readiness: {device: uart0, pattern: READY, timeout: 20s}
            """
        let r = try decode(text)
        let runs = try Workload.instances(from: r.resources)
        #expect(runs.map(\.name) == ["t-1"])
        #expect(runs[0].lifecycle.ttlSeconds == 900)
        #expect(runs[0].lifecycle.readiness?.timeoutSeconds == 20)
        #expect(runs[0].configData["firmware"] == Array("xyz".utf8))
    }
}
