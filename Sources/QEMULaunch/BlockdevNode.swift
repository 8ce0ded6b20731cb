/// One `-blockdev` node as QEMU's `BlockdevOptions` spells it. Every image is
/// two: a protocol node (`file`) that opens the path, and a format node
/// (`raw`, `qcow2`) on top that devices, snapshots and exports address.
public struct BlockdevNode: Sendable, Equatable, Encodable {
    public enum Driver: String, Sendable, Encodable {
        case file, raw, qcow2
    }

    public var driver: Driver
    public var nodeName: String
    /// Protocol nodes: the image's path, or `/dev/fdset/N`.
    public var filename: String?
    /// Format nodes: the name of the protocol node below.
    public var file: String?
    /// Set on both nodes: a read-only format node over a writable protocol
    /// node would still let a later reopen write.
    public var readOnly: Bool

    public static func file(_ nodeName: String, path: String, readOnly: Bool) -> BlockdevNode {
        BlockdevNode(driver: .file, nodeName: nodeName, filename: path, file: nil, readOnly: readOnly)
    }

    public static func format(_ driver: Driver, _ nodeName: String, over file: String, readOnly: Bool) -> BlockdevNode {
        BlockdevNode(driver: driver, nodeName: nodeName, filename: nil, file: file, readOnly: readOnly)
    }

    enum CodingKeys: String, CodingKey {
        case driver, filename, file
        case nodeName = "node-name"
        case readOnly = "read-only"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(driver, forKey: .driver)
        try c.encode(nodeName, forKey: .nodeName)
        try c.encodeIfPresent(filename, forKey: .filename)
        try c.encodeIfPresent(file, forKey: .file)
        // QEMU's default is writable: only the exception is spelled out.
        if readOnly { try c.encode(true, forKey: .readOnly) }
    }
}
