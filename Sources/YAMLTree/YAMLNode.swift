/// One YAML node with the position it came from. Aliases are resolved into
/// shared copies (arrays are copy-on-write), so a node tree is a plain value.
public struct YAMLNode: Sendable {
    public enum ScalarStyle: Sendable, Equatable {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    public enum Content: Sendable {
        case scalar(String, ScalarStyle)
        case sequence([YAMLNode])
        case mapping([YAMLPair])
    }

    public var content: Content
    public var location: SourceLocation
    /// The explicit tag (`!!binary`, `!custom`), when one was written.
    public var tag: String?

    public init(_ content: Content, at location: SourceLocation, tag: String? = nil) {
        self.content = content
        self.location = location
        self.tag = tag
    }

    public var scalar: String? {
        if case .scalar(let s, _) = content { return s }
        return nil
    }

    /// A plain scalar spelling null (`~`, `null`, empty) is YAML's null, and so is anything tagged `!!null`.
    public var isNull: Bool {
        if tag == Self.coreTag("null") { return true }
        if case .scalar(let s, .plain) = content, tag == nil {
            return s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL"
        }
        return false
    }

    /// `!!name` as the parser reports it.
    public static func coreTag(_ name: String) -> String { "tag:yaml.org,2002:" + name }

    public var kindName: String {
        switch content {
        case .scalar: return isNull ? "null" : "scalar"
        case .sequence: return "list"
        case .mapping: return "mapping"
        }
    }
}

public struct YAMLPair: Sendable {
    public var key: YAMLNode
    public var value: YAMLNode

    public init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}

/// One `---` document of a stream.
public struct YAMLDocument: Sendable {
    public var root: YAMLNode
    /// Where the document starts, for errors about the whole document.
    public var location: SourceLocation
}
