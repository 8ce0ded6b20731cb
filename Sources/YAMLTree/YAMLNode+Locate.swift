/// Finding "the same node" in two trees of one document written two ways:
/// the supervisor reports positions in the canonical YAML it stores, and the
/// CLI turns them back into positions in the file the user wrote.
extension YAMLNode {
    /// Steps from a node to one of its children: a mapping's key or value
    /// (pair index, isKey), or a sequence's item.
    public enum Step: Equatable, Sendable {
        case key(Int), value(Int), item(Int)
    }

    /// The steps to the deepest node that starts at `line`:`column`; nil when
    /// none does.
    public func steps(to line: Int, column: Int) -> [Step]? {
        if location.line == line && location.column == column, !hasChild(at: line, column) { return [] }
        switch content {
        case .scalar:
            return nil
        case .sequence(let items):
            for (i, item) in items.enumerated() {
                if let rest = item.steps(to: line, column: column) { return [.item(i)] + rest }
            }
        case .mapping(let pairs):
            for (i, p) in pairs.enumerated() {
                if let rest = p.key.steps(to: line, column: column) { return [.key(i)] + rest }
                if let rest = p.value.steps(to: line, column: column) { return [.value(i)] + rest }
            }
        }
        return location.line == line && location.column == column ? [] : nil
    }

    /// The node the steps lead to, or nil when this tree has another shape.
    public func following(_ steps: [Step]) -> YAMLNode? {
        var node = self
        for step in steps {
            switch (step, node.content) {
            case (.item(let i), .sequence(let items)) where i < items.count: node = items[i]
            case (.key(let i), .mapping(let pairs)) where i < pairs.count: node = pairs[i].key
            case (.value(let i), .mapping(let pairs)) where i < pairs.count: node = pairs[i].value
            default: return nil
            }
        }
        return node
    }

    private func hasChild(at line: Int, _ column: Int) -> Bool {
        switch content {
        case .scalar: return false
        case .sequence(let items): return items.contains { $0.location.line == line && $0.location.column == column }
        case .mapping(let pairs):
            return pairs.contains { ($0.key.location.line == line && $0.key.location.column == column) }
        }
    }
}
