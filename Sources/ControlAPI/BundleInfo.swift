/// One kept bundle of a recorded instance (`record: true`), as the
/// supervisor lists them (`GET /v1/bundles`): `vtarget bundle ls` reads
/// each one's manifest for its verdict.
public struct BundleInfo: Codable, Sendable, Equatable {
    public var namespace: String
    /// The instance's name.
    public var name: String
    /// Absolute: what `vtarget replay` takes.
    public var path: String
    public var size: UInt64
    /// When the bundle was written (seconds since 1970).
    public var modifiedAt: Double

    public init(namespace: String, name: String, path: String, size: UInt64, modifiedAt: Double) {
        self.namespace = namespace
        self.name = name
        self.path = path
        self.size = size
        self.modifiedAt = modifiedAt
    }
}
