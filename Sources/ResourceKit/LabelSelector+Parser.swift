extension LabelSelector {
    /// Parses kubectl's syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    /// `k notin (a,b)`, `k`, `!k`, joined by commas; keys and values are
    /// checked as Kubernetes checks label keys and values.
    public init(parsing text: String) throws(SelectorError) {
        var lexer = SelectorLexer(text)
        var requirements: [Requirement] = []
        func fail(_ reason: String) -> SelectorError { SelectorError(selector: text, reason: reason) }
        if lexer.peek() == .end { self.init([]); return }
        while true {
            let requirement: Requirement
            switch lexer.next() {
            case .not:
                guard case .word(let key) = lexer.next() else { throw fail("expected a key after '!'") }
                try Self.checkKey(key, text)
                requirement = .doesNotExist(key)
            case .word(let key):
                try Self.checkKey(key, text)
                switch lexer.peek() {
                case .end, .comma:
                    requirement = .exists(key)
                case .equals, .notEquals:
                    let negated = lexer.next() == .notEquals
                    var value = ""
                    if case .word(let v) = lexer.peek() { value = v; _ = lexer.next() }
                    try Self.checkValue(value, text)
                    requirement = negated ? .notEquals(key, value) : .equals(key, value)
                case .word("in"), .word("notin"):
                    let negated = lexer.next() == .word("notin")
                    let values = try Self.values(&lexer, text)
                    requirement = negated ? .notIn(key, values) : .in(key, values)
                case let other:
                    throw fail("after key \"\(key)\" expected =, ==, !=, in, notin, ',' or the end, found \(other)")
                }
            case let other:
                throw fail("expected a key or '!', found \(other)")
            }
            requirements.append(requirement)
            switch lexer.next() {
            case .end: self.init(requirements); return
            case .comma: continue
            case let other: throw fail("expected ',' or the end, found \(other)")
            }
        }
    }

    /// `(a, b, c)`; `()` is the one empty value, as Kubernetes reads it.
    private static func values(_ lexer: inout SelectorLexer, _ text: String) throws(SelectorError) -> [String] {
        func fail(_ reason: String) -> SelectorError { SelectorError(selector: text, reason: reason) }
        guard lexer.next() == .open else { throw fail("expected '(' after in/notin") }
        var values: [String] = []
        while true {
            var value = ""
            if case .word(let v) = lexer.peek() { value = v; _ = lexer.next() }
            try checkValue(value, text)
            values.append(value)
            switch lexer.next() {
            case .close: return values
            case .comma: continue
            case let other: throw fail("in a set of values expected ',' or ')', found \(other)")
            }
        }
    }

    /// `[prefix/]name`: the prefix a DNS subdomain, the name a qualified name.
    static func checkKey(_ key: String, _ text: String) throws(SelectorError) {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        let name = String(parts.last!)
        var ok = parts.count <= 2 && Names.isQualifiedName(name)
        if ok, parts.count == 2 {
            let prefix = parts[0]
            ok = !prefix.isEmpty && prefix.utf8.count <= 253
                && prefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { Names.isDNSLabel($0) }
        }
        if !ok {
            throw SelectorError(selector: text, reason: "invalid label key \"\(key)\": a name of at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, with an optional DNS prefix and '/'")
        }
    }

    static func checkValue(_ value: String, _ text: String) throws(SelectorError) {
        if !value.isEmpty && !Names.isQualifiedName(value) {
            throw SelectorError(selector: text, reason: "invalid label value \"\(value)\": at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
        }
    }

}

/// The selector's tokens: words, `!`, `=`/`==`, `!=`, `(`, `)`, `,`.
struct SelectorLexer {
    enum Token: Equatable, CustomStringConvertible {
        case word(String), not, equals, notEquals, open, close, comma, end

        var description: String {
            switch self {
            case .word(let w): return "\"\(w)\""
            case .not: return "'!'"
            case .equals: return "'='"
            case .notEquals: return "'!='"
            case .open: return "'('"
            case .close: return "')'"
            case .comma: return "','"
            case .end: return "the end"
            }
        }
    }

    private let chars: [Character]
    private var index = 0

    init(_ text: String) { chars = Array(text) }

    func peek() -> Token {
        var copy = self
        return copy.next()
    }

    mutating func next() -> Token {
        while index < chars.count && chars[index].isWhitespace { index += 1 }
        guard index < chars.count else { return .end }
        let c = chars[index]
        index += 1
        switch c {
        case ",": return .comma
        case "(": return .open
        case ")": return .close
        case "=":
            if index < chars.count && chars[index] == "=" { index += 1 }
            return .equals
        case "!":
            if index < chars.count && chars[index] == "=" { index += 1; return .notEquals }
            return .not
        default:
            var word = String(c)
            while index < chars.count, !chars[index].isWhitespace, !",()=!".contains(chars[index]) {
                word.append(chars[index])
                index += 1
            }
            return .word(word)
        }
    }
}
