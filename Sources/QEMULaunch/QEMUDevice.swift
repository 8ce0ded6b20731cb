/// A `-device` frontend in QEMU's JSON syntax, linked to its format node by
/// name; its id is what `device_del` and tray commands take.
struct QEMUDevice: Sendable, Encodable {
    var driver: String
    var id: String
    var drive: String
}
