/// One node of a structural OpenAPI v3 schema, as `apiextensions.k8s.io/v1`
/// spells it: only the fields vtarget's rules need. Value validations
/// (`not`, `oneOf`, `allOf`) carry no type, as a structural schema demands.
public final class JSONSchemaProps: Encodable, Sendable {
    public let type: String?
    public let description: String?
    public let properties: [String: JSONSchemaProps]?
    public let required: [String]?
    public let items: JSONSchemaProps?
    public let enumValues: [String]?
    public let pattern: String?
    public let minLength: Int?
    public let maxLength: Int?
    public let minimum: Double?
    public let maximum: Double?
    public let minItems: Int?
    public let minProperties: Int?
    public let maxProperties: Int?
    public let not: JSONSchemaProps?
    public let oneOf: [JSONSchemaProps]?
    public let allOf: [JSONSchemaProps]?
    public let intOrString: Bool?
    public let preserveUnknownFields: Bool?
    public let validations: [ValidationRule]?
    /// `map` with `listMapKeys`: the API server refuses two items with one key (drives, devices by name).
    public let listType: String?
    public let listMapKeys: [String]?

    /// A CEL rule (`x-kubernetes-validations`): for cross-field rules the
    /// API server checks and plain JSON Schema cannot.
    public struct ValidationRule: Encodable, Sendable {
        public let rule: String
        public let message: String
    }

    public init(type: String? = nil, description: String? = nil, properties: [String: JSONSchemaProps]? = nil,
                required: [String]? = nil, items: JSONSchemaProps? = nil, enumValues: [String]? = nil,
                pattern: String? = nil, minLength: Int? = nil, maxLength: Int? = nil,
                minimum: Double? = nil, maximum: Double? = nil, minItems: Int? = nil,
                minProperties: Int? = nil, maxProperties: Int? = nil,
                not: JSONSchemaProps? = nil, oneOf: [JSONSchemaProps]? = nil, allOf: [JSONSchemaProps]? = nil,
                intOrString: Bool? = nil, preserveUnknownFields: Bool? = nil, validations: [ValidationRule]? = nil,
                listType: String? = nil, listMapKeys: [String]? = nil) {
        self.type = type
        self.description = description
        self.properties = properties
        self.required = required
        self.items = items
        self.enumValues = enumValues
        self.pattern = pattern
        self.minLength = minLength
        self.maxLength = maxLength
        self.minimum = minimum
        self.maximum = maximum
        self.minItems = minItems
        self.minProperties = minProperties
        self.maxProperties = maxProperties
        self.not = not
        self.oneOf = oneOf
        self.allOf = allOf
        self.intOrString = intOrString
        self.preserveUnknownFields = preserveUnknownFields
        self.validations = validations
        self.listType = listType
        self.listMapKeys = listMapKeys
    }

    enum CodingKeys: String, CodingKey {
        case type, description, properties, required, items, pattern, minLength, maxLength, minimum, maximum
        case minItems, minProperties, maxProperties, not, oneOf, allOf
        case enumValues = "enum"
        case intOrString = "x-kubernetes-int-or-string"
        case preserveUnknownFields = "x-kubernetes-preserve-unknown-fields"
        case validations = "x-kubernetes-validations"
        case listType = "x-kubernetes-list-type"
        case listMapKeys = "x-kubernetes-list-map-keys"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(type, forKey: .type)
        try c.encodeIfPresent(description, forKey: .description)
        try c.encodeIfPresent(properties, forKey: .properties)
        try c.encodeIfPresent(required, forKey: .required)
        try c.encodeIfPresent(items, forKey: .items)
        try c.encodeIfPresent(enumValues, forKey: .enumValues)
        try c.encodeIfPresent(pattern, forKey: .pattern)
        try c.encodeIfPresent(minLength, forKey: .minLength)
        try c.encodeIfPresent(maxLength, forKey: .maxLength)
        // Whole bounds print as integers (0, not 0.0): what a reader of the CRD expects.
        try c.encodeIfPresent(minimum.map(Bound.init), forKey: .minimum)
        try c.encodeIfPresent(maximum.map(Bound.init), forKey: .maximum)
        try c.encodeIfPresent(minItems, forKey: .minItems)
        try c.encodeIfPresent(minProperties, forKey: .minProperties)
        try c.encodeIfPresent(maxProperties, forKey: .maxProperties)
        try c.encodeIfPresent(not, forKey: .not)
        try c.encodeIfPresent(oneOf, forKey: .oneOf)
        try c.encodeIfPresent(allOf, forKey: .allOf)
        try c.encodeIfPresent(intOrString, forKey: .intOrString)
        try c.encodeIfPresent(preserveUnknownFields, forKey: .preserveUnknownFields)
        try c.encodeIfPresent(validations, forKey: .validations)
        try c.encodeIfPresent(listType, forKey: .listType)
        try c.encodeIfPresent(listMapKeys, forKey: .listMapKeys)
    }

    struct Bound: Encodable {
        let value: Double
        init(_ value: Double) { self.value = value }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            if value == value.rounded(), abs(value) < 1e15 { try c.encode(Int(value)) } else { try c.encode(value) }
        }
    }
}
