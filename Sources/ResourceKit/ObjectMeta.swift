import YAMLTree

/// A value and where it was written, so later layers can still point at it.
public struct Located<Value: Sendable>: Sendable {
    public var value: Value
    public var location: SourceLocation?
    public var path: String
    public init(_ value: Value, at location: SourceLocation?, path: String) {
        self.value = value
        self.location = location
        self.path = path
    }
}

/// What every kind's `metadata` decodes to; shared by the board and VM specs.
public struct ObjectMeta: Sendable {
    public var name: String
    public var namespace: String
    public var labels: [String: String]
    public var location: SourceLocation

    public init(name: String, namespace: String, labels: [String: String], location: SourceLocation) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.location = location
    }
}
