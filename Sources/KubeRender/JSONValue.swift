import YAMLTree

/// A JSON value: the body of an object vtarget prints without a Swift type
/// of its own (a KubeVirt object passed through, a VirtualMachine made from
/// a Viti Machine), encoded with the same sorted keys as every other object.
public indirect enum JSONValue: Encodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The value of `key` in an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    /// An object with `key` set (replaced in place, else appended); other values unchanged.
    public func setting(_ key: String, _ value: JSONValue) -> JSONValue {
        guard case .object(var pairs) = self else { return self }
        if let i = pairs.firstIndex(where: { $0.0 == key }) { pairs[i].1 = value } else { pairs.append((key, value)) }
        return .object(pairs)
    }

    /// An object without `key`.
    public func removing(_ key: String) -> JSONValue {
        guard case .object(let pairs) = self else { return self }
        return .object(pairs.filter { $0.0 != key })
    }

    /// A YAML node as the API server reads it (YAML 1.2's core schema, as
    /// sigs.k8s.io/yaml does): plain `true`/`false`, numbers and null are
    /// typed, quoted scalars and `!!str` stay strings.
    public init(yaml node: YAMLNode) {
        switch node.content {
        case .sequence(let items):
            self = .array(items.map(JSONValue.init(yaml:)))
        case .mapping(let pairs):
            self = .object(pairs.map { ($0.key.scalar ?? "", JSONValue(yaml: $0.value)) })
        case .scalar(let s, let style):
            if node.isNull { self = .null; return }
            let tag = node.tag
            if tag == YAMLNode.coreTag("str") || (tag == nil && style != .plain) {
                self = .string(s)
                return
            }
            if tag == nil || tag == YAMLNode.coreTag("bool"), let b = Self.bool(s) { self = .bool(b); return }
            if tag == nil || tag == YAMLNode.coreTag("int"), let i = Self.int(s) { self = .int(i); return }
            if tag == nil || tag == YAMLNode.coreTag("float"), let d = Self.double(s) { self = .double(d); return }
            self = .string(s)
        }
    }

    static func bool(_ s: String) -> Bool? {
        switch s {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    /// Decimal, `0o` octal or `0x` hexadecimal, as the core schema's int.
    static func int(_ s: String) -> Int? {
        if s.hasPrefix("0x") { return Int(s.dropFirst(2), radix: 16) }
        if s.hasPrefix("0o") { return Int(s.dropFirst(2), radix: 8) }
        let digits = s.hasPrefix("-") || s.hasPrefix("+") ? s.dropFirst() : Substring(s)
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        return Int(s.hasPrefix("+") ? String(digits) : s)
    }

    static func double(_ s: String) -> Double? {
        switch s {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        default: break
        }
        // The core schema's float: digits with a point or an exponent (not `1_000`, not `nan` spelled otherwise).
        guard s.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }),
              s.allSatisfy({ ($0 >= "0" && $0 <= "9") || "+-.eE".contains($0) }) else { return nil }
        return Double(s)
    }

    struct CodingName: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .int(let i):
            var c = encoder.singleValueContainer()
            try c.encode(i)
        case .double(let d):
            var c = encoder.singleValueContainer()
            try c.encode(d)
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for item in items { try c.encode(item) }
        case .object(let pairs):
            var c = encoder.container(keyedBy: CodingName.self)
            for (k, v) in pairs { try c.encode(v, forKey: CodingName(stringValue: k)) }
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public typealias Key = String
    public typealias Value = JSONValue
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// In the order written (the printed order is sorted anyway).
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements.map { ($0.0, $0.1) }) }
}
