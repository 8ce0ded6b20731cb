/// Node trees made by vtarget itself (a pool member's instance, objects it
/// prints), so that generated YAML goes through the emitter's quoting and
/// never through string interpolation of user-chosen names.
extension YAMLNode {
    /// Where generated nodes "come from" in an error message.
    public static let generated = SourceLocation(file: "<generated>", line: 0, column: 0)

    public static func string(_ value: String) -> YAMLNode {
        // A quoted style: the emitter writes it plain unless it would read back as null, a number or a boolean.
        YAMLNode(.scalar(value, .doubleQuoted), at: generated)
    }

    public static func mapping(_ pairs: [(String, YAMLNode)]) -> YAMLNode {
        YAMLNode(.mapping(pairs.map { YAMLPair(key: .string($0.0), value: $0.1) }), at: generated)
    }
}
