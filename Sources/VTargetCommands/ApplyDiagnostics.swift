import ControlAPI
import YAMLTree

/// Turns the supervisor's 422 (positions in the canonical YAML it stores)
/// into the user's own `file:line:column`, through the same node in the tree
/// the CLI parsed from that file.
struct ApplyDiagnostics {
    /// Each applied resource with the document it came from.
    var sources: [(resource: AppliedResource, root: YAMLNode)]

    func render(_ diagnostics: [APIDiagnostic]) -> [String] {
        diagnostics.map { d in
            var where_ = "\(d.kind) \(d.namespace)/\(d.name)"
            if let source = sources.first(where: { $0.resource.kind == d.kind && $0.resource.namespace == d.namespace && $0.resource.name == d.name }) {
                where_ = source.root.location.description
                if let line = d.line, let column = d.column,
                   let stored = try? YAMLParser.parse(Array(source.resource.yaml.utf8), file: "stored").first?.root,
                   let steps = stored.steps(to: line, column: column), let mine = source.root.following(steps) {
                    where_ = mine.location.description
                }
            }
            return "\(where_): error: " + (d.field.map { "\($0): " } ?? "") + d.message
        }
    }
}
