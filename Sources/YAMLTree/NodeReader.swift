/// Collects diagnostics while a tree is decoded; strictness decides whether
/// unknown fields are errors (default) or warnings (`--lenient`).
public final class DecodeContext {
    public private(set) var diagnostics: [Diagnostic] = []
    public let strict: Bool

    public init(strict: Bool = true) { self.strict = strict }

    public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    public func error(_ node: YAMLNode?, _ path: String, _ message: String) {
        diagnostics.append(Diagnostic(.error, at: node?.location, field: path, message))
    }

    public func error(at location: SourceLocation?, _ path: String, _ message: String) {
        diagnostics.append(Diagnostic(.error, at: location, field: path, message))
    }

    public func warning(_ node: YAMLNode?, _ path: String, _ message: String) {
        diagnostics.append(Diagnostic(.warning, at: node?.location, field: path, message))
    }

    public func append(_ d: Diagnostic) { diagnostics.append(d) }
}

/// Reads one mapping field by field, remembering which keys were read so the
/// rest can be reported as unknown.
public final class MappingReader {
    public let node: YAMLNode
    public let path: String
    public let context: DecodeContext
    private let pairs: [YAMLPair]
    /// A set: `finish` asks it once per key, and data maps have thousands.
    private var known: Set<String> = []

    /// nil (with an error recorded) when the node is not a mapping.
    public init?(_ node: YAMLNode, path: String, context: DecodeContext) {
        guard case .mapping(let pairs) = node.content else {
            context.error(node, path, "expected a mapping, got a \(node.kindName)")
            return nil
        }
        self.node = node
        self.path = path
        self.context = context
        self.pairs = pairs
    }

    public func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The value of `key`, or nil; a null value counts as absent.
    public func value(_ key: String) -> YAMLNode? {
        known.insert(key)
        guard let v = pairs.first(where: { $0.key.scalar == key })?.value, !v.isNull else { return nil }
        return v
    }

    /// Marks keys as known without reading them: after an error that stops
    /// decoding, the rest of the mapping is not reported as unknown.
    public func accept(_ keys: [String]) { known.formUnion(keys) }

    public func has(_ key: String) -> Bool { pairs.contains { $0.key.scalar == key } }

    public func required(_ key: String) -> YAMLNode? {
        let v = value(key)
        if v == nil { context.error(at: node.location, child(key), "required field is missing") }
        return v
    }

    public func string(_ key: String, required: Bool = false) -> String? {
        guard let v = required ? self.required(key) : value(key) else { return nil }
        return Self.string(v, child(key), context)
    }

    public func int(_ key: String, in range: ClosedRange<Int>? = nil) -> Int? {
        guard let v = value(key) else { return nil }
        return Self.int(v, child(key), context, in: range)
    }

    public func bool(_ key: String) -> Bool? {
        guard let v = value(key) else { return nil }
        switch v.scalar {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default:
            context.error(v, child(key), "expected true or false, got \(describe(v))")
            return nil
        }
    }

    public func mapping(_ key: String, required: Bool = false) -> MappingReader? {
        guard let v = required ? self.required(key) : value(key) else { return nil }
        return MappingReader(v, path: child(key), context: context)
    }

    public func sequence(_ key: String) -> [(YAMLNode, String)]? {
        guard let v = value(key) else { return nil }
        guard case .sequence(let items) = v.content else {
            context.error(v, child(key), "expected a list, got a \(v.kindName)")
            return nil
        }
        return items.enumerated().map { ($1, "\(child(key))[\($0)]") }
    }

    public func stringList(_ key: String) -> [String]? {
        sequence(key)?.compactMap { Self.string($0.0, $0.1, context) }
    }

    /// `key: value` pairs of strings, as in labels and ConfigMap data;
    /// `binary`: values may be tagged `!!binary` (ConfigMap binaryData, base64 either way).
    public func stringMap(_ key: String, binary: Bool = false) -> [(String, String, YAMLNode)]? {
        guard let m = mapping(key) else { return nil }
        return m.allPairs().compactMap { k, v in
            guard let s = Self.string(v, m.child(k), context, binary: binary) else { return nil }
            return (k, s, v)
        }
    }

    /// Every pair, for maps whose keys are data rather than a schema.
    public func allPairs() -> [(String, YAMLNode)] {
        pairs.compactMap { p in
            guard let k = p.key.scalar else {
                context.error(p.key, path, "keys must be strings, got a \(p.key.kindName)")
                return nil
            }
            known.insert(k)
            return (k, p.value)
        }
    }

    /// Reports keys nobody read: an error in strict mode, a warning otherwise.
    public func finish() {
        let valid = known.sorted()
        for p in pairs {
            let k = p.key.scalar ?? "?"
            if known.contains(k) { continue }
            var msg = "unknown field \"\(k)\""
            if let n = Suggestion.nearest(k, in: valid) {
                msg += "; did you mean \"\(n)\"?"
            } else if !valid.isEmpty {
                msg += "; valid fields: " + valid.joined(separator: ", ")
            }
            if context.strict {
                context.error(p.key, child(k), msg)
            } else {
                context.warning(p.key, child(k), msg)
            }
        }
    }

    /// A scalar's text. A `!!binary` value is bytes, not its base64 text,
    /// so it is read only where base64 is what is meant (`binary`).
    public static func string(_ v: YAMLNode, _ path: String, _ context: DecodeContext, binary: Bool = false) -> String? {
        guard let s = v.scalar else {
            context.error(v, path, "expected a string, got a \(v.kindName)")
            return nil
        }
        if v.tag == YAMLNode.coreTag("binary") && !binary {
            context.error(v, path, "!!binary is read only in a ConfigMap's binaryData; write the text itself here")
            return nil
        }
        return s
    }

    /// A plain number, or one tagged `!!int`; `!!str 5` is a string.
    public static func int(_ v: YAMLNode, _ path: String, _ context: DecodeContext, in range: ClosedRange<Int>? = nil) -> Int? {
        let isNumber: Bool
        if case .scalar(_, .plain) = v.content { isNumber = v.tag == nil || v.tag == YAMLNode.coreTag("int") } else { isNumber = v.tag == YAMLNode.coreTag("int") }
        guard let s = v.scalar, isNumber, let n = Int(s) else {
            // Digits beyond Int's range are a number, just far too large.
            if case .scalar(let s, .plain) = v.content, let range, case let digits = s.drop(while: { $0 == "-" || $0 == "+" }),
               !digits.isEmpty, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }) {
                context.error(v, path, "\(s) is out of range; valid: \(range.lowerBound) to \(range.upperBound)")
                return nil
            }
            context.error(v, path, "expected a whole number, got \(describe(v))")
            return nil
        }
        if let range, !range.contains(n) {
            context.error(v, path, "\(n) is out of range; valid: \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return n
    }
}

/// How a value is named in an error message.
public func describe(_ v: YAMLNode) -> String {
    if let s = v.scalar { return "\"\(s)\"" }
    return "a \(v.kindName)"
}
