extension QemuImg {
    /// A 64 MiB qcow2 in `directory` that holds only `savevm` state (warm
    /// pools): boards without a disk have nowhere else to keep a snapshot.
    public func createSnapshotScratch(in directory: String) async throws(QemuImgError) -> String {
        let path = directory + "/snapshot.qcow2"
        try await create(path: path, format: .qcow2, size: Self.snapshotScratchBytes)
        return path
    }

    /// The same scratch, copied from the one made before (`templates`, when given).
    public func createSnapshotScratch(in directory: String, templates: TemplateCache?) async throws -> String {
        let path = directory + "/snapshot.qcow2"
        try await create(path: path, format: .qcow2, size: Self.snapshotScratchBytes, templates: templates)
        return path
    }

    static let snapshotScratchBytes: UInt64 = 64 << 20
}
