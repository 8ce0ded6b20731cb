import Foundation
import MachineCatalog
import TestSupport
import Testing
import TargetSpec
import YAMLTree

/// Every file in BadInputs/ starts with `# expect: <line>:<col> <field>: <message start>`
/// lines (as in TargetSpecTests); each must appear among the errors of
/// decoding and resolving it, exactly positioned.
@Suite struct VMBadInputTests {
    static let corpus: [String] = (try? FileManager.default.contentsOfDirectory(atPath: repoRoot + "/Tests/VMSpecTests/BadInputs"))?.filter { $0.hasSuffix(".yaml") }.sorted() ?? []

    @Test func corpusIsThere() {
        #expect(Self.corpus.count >= 18)
    }

    @Test(arguments: corpus)
    func refusedWithPosition(_ name: String) throws {
        let text = try String(contentsOfFile: repoRoot + "/Tests/VMSpecTests/BadInputs/" + name, encoding: .utf8)
        let expectations = text.split(separator: "\n").filter { $0.hasPrefix("# expect: ") }.map { $0.dropFirst("# expect: ".count) }
        #expect(!expectations.isEmpty, "\(name) has no # expect: line")
        do {
            _ = try ResourceDecoder(catalog: builtInCatalog()).decode([SourceFile(path: name, directory: "/", bytes: Array(text.utf8))])
            Issue.record("\(name) was accepted")
        } catch let e as DiagnosticError {
            let rendered = e.errors.map(\.description)
            for x in expectations {
                let want = "\(name):" + x.replacingOccurrences(of: " ", with: ": error: ", options: [], range: x.range(of: " "))
                #expect(rendered.contains { $0.hasPrefix(want) }, "\(name): expected \(want)\n got:\n\(rendered.joined(separator: "\n"))")
            }
        }
    }
}
