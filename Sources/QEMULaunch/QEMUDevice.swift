/// A `-device` frontend in QEMU's JSON syntax, linked to its format node by
/// name; its id is what `device_del` and tray commands take.
public struct QEMUDevice: Sendable, Encodable {
    public var driver: String
    public var id: String
    public var drive: String

    public init(driver: String, id: String, drive: String) {
        self.driver = driver
        self.id = id
        self.drive = drive
    }

    /// Models that refuse a read-only node at start-up ("Cannot use read-only
    /// drive as SD card"): a read-only drive on them is refused when planning.
    static let writableOnly: Set<String> = ["ide-hd", "sd-card"]
}
