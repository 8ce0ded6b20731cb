import HostOS

/// The one qcow2 header field vtarget reads itself: a named volume's size,
/// checked at every start against its claim's request, is a 32-byte read
/// rather than a `qemu-img info` process.
public enum QCOW2Header {
    public static let magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]

    /// The guest-visible size in bytes (big-endian at offset 24 in versions
    /// 2 and 3), or nil when `header` does not start a qcow2 image.
    public static func virtualSize(_ header: some Collection<UInt8>) -> UInt64? {
        let h = Array(header.prefix(32))
        guard h.count == 32, h.starts(with: magic) else { return nil }
        return h[24..<32].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// As `virtualSize(_:)`, from the file at `path`; nil when it cannot be
    /// read or is not qcow2.
    public static func virtualSize(ofFile path: String) -> UInt64? {
        virtualSize(FileDescriptors.head(path, 32))
    }
}
