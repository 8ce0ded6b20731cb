import Foundation
import KubeRender
import MachineCatalog
import ResourceKit
import TestSupport
import Testing
import YAMLTree
@testable import KubeRender
@testable import TargetSpec

/// The schema data against the decoder's own predicates: where the CRD
/// writes a rule as a pattern, the pattern and the Swift check agree on
/// every string tried (all short strings over the characters that matter,
/// and the boundary cases).
@Suite struct CRDSchemaTests {
    /// Every string of length 0...n over `alphabet`.
    static func strings(_ alphabet: [Character], upTo n: Int) -> [String] {
        var all = [""], layer = [""]
        for _ in 0..<n {
            layer = layer.flatMap { s in alphabet.map { s + String($0) } }
            all += layer
        }
        return all
    }

    /// JSON Schema's `pattern` searches; every pattern here is anchored, so a search is a whole match.
    static func matches(_ pattern: String, _ s: String) -> Bool {
        (try? Regex(pattern).firstMatch(in: s)) != nil
    }

    @Test func dnsLabelPatternIsNamesIsDNSLabel() throws {
        var cases = Self.strings(["a", "z", "0", "-", "A", "_", "."], upTo: 4)
        cases += [String(repeating: "a", count: 63), String(repeating: "a", count: 64), "a-b", "-a", "a-"]
        let schema = CRDSchema.dnsLabel("x")
        for s in cases {
            let schemaSays = Self.matches(CRDSchema.dnsLabelPattern, s) && s.count <= schema.maxLength!
            #expect(schemaSays == Names.isDNSLabel(s), "\"\(s)\"")
        }
    }

    @Test func envNamePatternIsIsEnvName() {
        for s in Self.strings(["a", "Z", "9", "_", "-", ".", "=", " ", "\0"], upTo: 3) {
            #expect(Self.matches(CRDSchema.envNamePattern, s) == ResourceDecoder.isEnvName(s), "\"\(s)\"")
        }
    }

    @Test func configKeyPatternIsIsConfigKey() {
        for s in Self.strings(["a", "Z", "9", "_", "-", ".", "/", " "], upTo: 3) where s != "." && s != ".." {
            #expect(Self.matches(CRDSchema.configKeyPattern, s) == ResourceDecoder.isConfigKey(s), "\"\(s)\"")
        }
    }

    /// Below the 64Ti bound, which a pattern cannot state (the bad-input test lists it).
    @Test func quantityPatternIsQuantityBytes() {
        var cases = Self.strings(["0", "1", "9", "K", "i", "M", "G", "T", "k", "B", " "], upTo: 3)
        cases += ["256M", "256Mi", "1Gi", "64Ti", "00001", "0Mi", "256MB", "1.5G", "-1", "+1", "1e3"]
        var aboveBound = 0
        for s in cases where !s.hasPrefix(" ") && !s.hasSuffix(" ") {
            do {
                _ = try Quantity.bytes(s)
                #expect(Self.matches(CRDSchema.quantityPattern, s), "\"\(s)\"")
            } catch {
                if error.description.contains("above the maximum") {
                    aboveBound += 1
                    #expect(Self.matches(CRDSchema.quantityPattern, s), "\"\(s)\": the pattern checks syntax only")
                } else {
                    #expect(!Self.matches(CRDSchema.quantityPattern, s), "\"\(s)\"")
                }
            }
        }
        #expect(aboveBound > 0, "the cases reach the bound")
    }

    /// Syntax only: zero, which a pattern could only state awkwardly, and the one-year bound are left to vtarget.
    @Test func durationPatternIsQuantityDuration() {
        var cases = Self.strings(["1", "0", ".", "m", "s", "h", "x"], upTo: 4)
        cases += ["30s", "15m", "1h30m", "500ms", "1.5h", ".5s", "1.s", "30 minutes", "1d", "0", "ms", "1m1"]
        for s in cases where !s.hasPrefix(" ") && !s.hasSuffix(" ") {
            let local = (try? Quantity.duration(s, allowZero: true)) != nil
            #expect(Self.matches(CRDSchema.durationPattern, s) == local, "\"\(s)\"")
        }
    }

    @Test func forbiddenExtraArgsAreTheDecoders() {
        #expect(CRDSchema.forbiddenExtraArgs == ResourceDecoder.forbiddenExtraArgs)
        for flag in ResourceDecoder.forbiddenExtraArgs {
            #expect(Self.matches(CRDSchema.forbiddenExtraArgPattern, flag))
            #expect(Self.matches(CRDSchema.forbiddenExtraArgPattern, flag + "=x"))
            #expect(Self.matches(CRDSchema.forbiddenExtraArgPattern, String(flag.dropFirst())))
        }
        for ok in ["-d", "int", "-serial0", "--monitor", "-smp", "guest_errors"] {
            #expect(!Self.matches(CRDSchema.forbiddenExtraArgPattern, ok), "\(ok)")
        }
    }

    /// Every column `vtarget get` shows becomes a printer column, in order; wide ones at priority 1.
    @Test func printerColumnsAreTheRegistrys() throws {
        let crds = try CRDSchema.definitions()
        #expect(crds.map(\.spec.names.kind) == CRDSchema.kinds)
        for crd in crds {
            let kind = try #require(KindRegistry.builtIn.kinds.first { $0.kind == crd.spec.names.kind })
            let columns = crd.spec.versions[0].additionalPrinterColumns
            #expect(columns.count == kind.columns.count)
            for (col, reg) in zip(columns, kind.columns) {
                #expect(col.name.uppercased() == reg.header, "\(kind.kind): \(col.name) vs \(reg.header)")
                #expect((col.priority == 1) == reg.wide, "\(kind.kind) \(reg.header)")
                #expect(col.jsonPath.hasPrefix("."))
            }
            #expect(crd.spec.group == kind.group && crd.spec.versions[0].name == kind.version)
            #expect(crd.spec.names.plural == kind.plural && crd.metadata.name == "\(kind.plural).\(kind.group)")
            #expect(crd.spec.names.shortNames == kind.shortNames)
        }
    }

    /// `x-kubernetes-preserve-unknown-fields` only on status: everything else is pruned or refused.
    @Test func onlyStatusPreservesUnknownFields() throws {
        func walk(_ p: JSONSchemaProps, _ path: String, _ found: inout [String]) {
            if p.preserveUnknownFields == true { found.append(path) }
            for (k, v) in p.properties ?? [:] { walk(v, path + "." + k, &found) }
            if let items = p.items { walk(items, path + "[]", &found) }
        }
        for kind in CRDSchema.kinds {
            var found: [String] = []
            walk(try #require(CRDSchema.schema(for: kind)), "", &found)
            #expect(found == [".status"], "\(kind): \(found)")
        }
    }

    /// Structural: every property has a type (or is int-or-string); value validations carry none.
    @Test func schemasAreStructural() throws {
        func walk(_ p: JSONSchemaProps, _ path: String, inValidation: Bool) {
            if inValidation {
                #expect(p.type == nil && p.properties == nil && p.items == nil, "\(path): a value validation with structure")
            } else {
                #expect(p.type != nil || p.intOrString == true, "\(path) has no type")
            }
            for (k, v) in p.properties ?? [:] { walk(v, path + "." + k, inValidation: inValidation) }
            if let items = p.items { walk(items, path + "[]", inValidation: inValidation) }
            for v in (p.oneOf ?? []) + (p.allOf ?? []) + (p.not.map { [$0] } ?? []) { walk(v, path + "(validation)", inValidation: true) }
        }
        for kind in CRDSchema.kinds { walk(try #require(CRDSchema.schema(for: kind)), kind, inValidation: false) }
    }

    @Test func crdsGolden() throws {
        let crds = try CRDSchema.definitions().map(KubeObject.crd)
        try checkKubeGolden("crds.yaml", try KubeOutput.text(crds, .yaml))
        let json = try KubeOutput.text(crds, .json)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(list["kind"] as? String == "List")
        #expect((list["items"] as? [Any])?.count == 3)
    }
}
