/// `apiextensions.k8s.io/v1` CustomResourceDefinition: the fields `vtarget crds` fills.
public struct CustomResourceDefinition: Encodable, Sendable {
    public var apiVersion = "apiextensions.k8s.io/v1"
    public var kind = "CustomResourceDefinition"
    public var metadata: ObjectMetadata
    public var spec: Spec

    public struct Spec: Encodable, Sendable {
        public var group: String
        public var names: Names
        public var scope: String
        public var versions: [Version]
    }

    public struct Names: Encodable, Sendable {
        public var kind: String
        public var listKind: String
        public var plural: String
        public var singular: String
        public var shortNames: [String]?
    }

    public struct Version: Encodable, Sendable {
        public var name: String
        public var served: Bool
        public var storage: Bool
        public var schema: Schema
        public var subresources: Subresources
        public var additionalPrinterColumns: [PrinterColumn]
    }

    public struct Schema: Encodable, Sendable {
        public var openAPIV3Schema: JSONSchemaProps
    }

    /// `subresources: {status: {}}`: status is written through its own endpoint.
    public struct Subresources: Encodable, Sendable {
        public struct Empty: Encodable, Sendable {}
        public var status = Empty()
    }

    public struct PrinterColumn: Encodable, Sendable, Equatable {
        public var name: String
        public var type: String
        public var jsonPath: String
        public var priority: Int?
        public var description: String?
    }
}
