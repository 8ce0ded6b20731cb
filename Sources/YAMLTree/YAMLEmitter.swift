/// Writes node trees back as block YAML, the way kubectl prints objects.
///
/// The supervisor stores each applied resource in this canonical form: two
/// applies of the same content with other comments, key quoting or flow
/// style give the same text, so "unchanged" means unchanged. Parsing the
/// output gives back the same tree (styles aside): a plain scalar that reads
/// as null, a boolean or a number stays plain, and a quoted one that would
/// read as such stays quoted.
public enum YAMLEmitter {
    public static func emit(_ documents: [YAMLNode]) -> String {
        documents.map { emit($0) }.joined(separator: "---\n")
    }

    public static func emit(_ node: YAMLNode) -> String {
        if let inline = inline(node) { return inline + "\n" }
        var out = ""
        block(node, indent: 0, into: &out)
        return out
    }

    /// A scalar, or an empty collection, written on one line; nil for a block.
    static func inline(_ node: YAMLNode) -> String? {
        let tag = node.tag.map { tagText($0) + " " } ?? ""
        switch node.content {
        case .scalar(let s, let style): return tag + scalarText(s, style: style)
        case .sequence(let items) where items.isEmpty: return tag + "[]"
        case .mapping(let pairs) where pairs.isEmpty: return tag + "{}"
        default: return nil
        }
    }

    /// A non-empty collection, every line starting at `indent`.
    static func block(_ node: YAMLNode, indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        switch node.content {
        case .mapping(let pairs):
            for p in pairs {
                out += pad + (inline(p.key) ?? flow(p.key)) + ":"
                if let v = inline(p.value) {
                    out += (v.isEmpty ? "" : " " + v) + "\n"
                } else {
                    out += (p.value.tag.map { " " + tagText($0) } ?? "") + "\n"
                    block(p.value, indent: indent + 2, into: &out)
                }
            }
        case .sequence(let items):
            for item in items {
                if let v = inline(item) {
                    out += pad + "-" + (v.isEmpty ? "" : " " + v) + "\n"
                } else if let tag = item.tag {
                    out += pad + "- " + tagText(tag) + "\n"
                    block(item, indent: indent + 2, into: &out)
                } else {
                    // The item's first line goes after the dash.
                    var inner = ""
                    block(item, indent: indent + 2, into: &inner)
                    out += pad + "- " + inner.dropFirst(indent + 2)
                }
            }
        case .scalar:
            out += pad + (inline(node) ?? "") + "\n"
        }
    }

    /// Collections as mapping keys (legal, never seen in resources) in flow style.
    static func flow(_ node: YAMLNode) -> String {
        switch node.content {
        case .scalar(let s, let style): return scalarText(s, style: style)
        case .sequence(let items): return "[" + items.map(flow).joined(separator: ", ") + "]"
        case .mapping(let pairs): return "{" + pairs.map { flow($0.key) + ": " + flow($0.value) }.joined(separator: ", ") + "}"
        }
    }

    static func tagText(_ tag: String) -> String {
        let core = "tag:yaml.org,2002:"
        if tag.hasPrefix(core) { return "!!" + tag.dropFirst(core.count) }
        if tag.hasPrefix("!") { return tag }
        return "!<" + tag + ">"
    }

    static func scalarText(_ s: String, style: YAMLNode.ScalarStyle) -> String {
        if style == .plain {
            if s.isEmpty || s == "~" { return s }
            return isSafePlain(s) ? s : doubleQuoted(s)
        }
        return isSafePlain(s) && !readsAsNonString(s) ? s : doubleQuoted(s)
    }

    /// Text that reads back as the same plain scalar wherever it is written.
    static func isSafePlain(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, let last = s.unicodeScalars.last else { return false }
        if "-?:,[]{}#&*!|>'\"%@` ~".unicodeScalars.contains(first) && !(first == "-" && s.count > 1 && !s.hasPrefix("- ") && !s.hasPrefix("---")) {
            return false
        }
        if last == " " || last == ":" { return false }
        if s.contains(": ") || s.contains(" #") { return false }
        for u in s.unicodeScalars where u.value < 0x20 || u.value == 0x7F || u.value == 0xFEFF { return false }
        return true
    }

    /// What YAML 1.1 or 1.2 would read as null, a boolean, a number or a time when plain.
    static func readsAsNonString(_ s: String) -> Bool {
        let words: Set<String> = ["~", "null", "true", "false", "yes", "no", "y", "n", "on", "off", ".inf", "-.inf", "+.inf", ".nan"]
        if words.contains(s.lowercased()) { return true }
        return s.unicodeScalars.allSatisfy { "0123456789+-._:eExXoObBabcdefABCDEF".unicodeScalars.contains($0) }
            && s.unicodeScalars.contains { ("0"..."9").contains($0) }
    }

    static func doubleQuoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            default:
                if u.value < 0x20 || u.value == 0x7F || u.value == 0xFEFF || (0x80...0x9F).contains(u.value) {
                    out += Diagnostic.escape(u)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
