import Crypto

/// `sha256:<64 lowercase hex>`, the only algorithm vtarget accepts: the
/// store is addressed by it and every registry speaks it.
public struct OCIDigest: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// The 64 hex digits.
    public let hex: String

    public init(hex: String) throws(ImageStoreError) {
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw ImageStoreError(.badReference, "digest \"\(hex)\": expected 64 lowercase hex digits")
        }
        self.hex = hex
    }

    /// Parses `sha256:<hex>`; any other algorithm is refused by name.
    public init(parsing text: String) throws(ImageStoreError) {
        guard let colon = text.firstIndex(of: ":") else {
            throw ImageStoreError(.badReference, "digest \"\(text)\": expected sha256:<64 lowercase hex digits>")
        }
        let algorithm = text[..<colon]
        guard algorithm == "sha256" else {
            throw ImageStoreError(.badReference, "digest \"\(text)\": algorithm \"\(algorithm)\" is not supported; only sha256")
        }
        try self.init(hex: String(text[text.index(after: colon)...]))
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            try self.init(parsing: text)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public var description: String { "sha256:" + hex }
    /// The first 12 hex digits, as `image ls` shows them.
    public var short: String { String(hex.prefix(12)) }

    public static func < (a: OCIDigest, b: OCIDigest) -> Bool { a.hex < b.hex }

    /// The digest of bytes held in memory (manifests).
    public static func of(_ bytes: some Sequence<UInt8>) -> OCIDigest {
        var h = Hasher()
        h.update(Array(bytes))
        return h.finish()
    }

    /// Incremental sha256: blobs and disks are hashed as they stream past.
    public struct Hasher: Sendable {
        private var state = SHA256()

        public init() {}

        public mutating func update(_ bytes: [UInt8]) { state.update(data: bytes) }
        public mutating func update(_ buffer: UnsafeRawBufferPointer) { state.update(bufferPointer: buffer) }

        public func finish() -> OCIDigest {
            // Two digits a byte from a table: 32 `String(radix:)`s and a
            // join were a tenth of a template copy's time.
            let digits = Array("0123456789abcdef".utf8)
            var hex: [UInt8] = []
            hex.reserveCapacity(64)
            for b in state.finalize() {
                hex.append(digits[Int(b >> 4)])
                hex.append(digits[Int(b & 15)])
            }
            // A hex string of SHA256's 32 bytes is always valid.
            return try! OCIDigest(hex: String(decoding: hex, as: UTF8.self))
        }
    }
}
