/// Everything the image store and `image pull` can fail with: what kind of
/// failure (the CLI maps `badReference` to exit 2, the rest to 1) and why,
/// in words that say what would be valid.
public struct ImageStoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// A reference or flag the user wrote that cannot be valid.
        case badReference
        /// No such image in the store, or no such tag in the registry.
        case notFound
        /// A file that is not a self-contained qcow2 or raw disk.
        case unsupportedImage
        /// A registry image whose `/disk/` does not hold exactly one disk.
        case layout
        /// `rm` of an image a VM's overlay still uses.
        case inUse
        /// The registry refused, answered nonsense or could not be reached.
        case registry
        /// Bytes whose sha256 or size is not what the manifest promised.
        case verification
        /// The file system or a tool (qemu-img, tar) failed.
        case io
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        guard let cause else { return message }
        return message + ": \(cause)"
    }
}
