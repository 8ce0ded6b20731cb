/// `qemu-img info --output=json`, the fields vtarget reads.
public struct ImageInfo: Sendable, Equatable, Decodable {
    /// An internal snapshot (qcow2), as `savevm` writes them.
    public struct Snapshot: Sendable, Equatable, Decodable {
        public var id: String
        public var name: String
        public var vmStateSize: UInt64

        enum CodingKeys: String, CodingKey {
            case id, name
            case vmStateSize = "vm-state-size"
        }
    }

    public var filename: String
    /// qemu-img's name for it: `raw`, `qcow2`, `vmdk`, ...
    public var format: String
    public var virtualSize: UInt64
    /// Bytes allocated on the host; absent where the file system cannot tell.
    public var actualSize: UInt64?
    public var backingFilename: String?
    public var backingFormat: String?
    public var dirty: Bool?
    public var snapshots: [Snapshot]?
    /// qcow2's details; read for an external data file, where the guest's
    /// bytes would live in another file than the image.
    public var formatSpecific: FormatSpecific?

    public struct FormatSpecific: Sendable, Equatable, Decodable {
        public struct Details: Sendable, Equatable, Decodable {
            public var dataFile: String?
            enum CodingKeys: String, CodingKey { case dataFile = "data-file" }
        }
        public var data: Details?
    }

    enum CodingKeys: String, CodingKey {
        case filename, format, snapshots
        case formatSpecific = "format-specific"
        case virtualSize = "virtual-size"
        case actualSize = "actual-size"
        case backingFilename = "backing-filename"
        case backingFormat = "backing-filename-format"
        case dirty = "dirty-flag"
    }
}
