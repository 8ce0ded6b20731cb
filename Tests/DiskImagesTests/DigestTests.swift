@testable import DiskImages
import Testing

@Suite struct DigestTests {
    @Test func knownVectors() {
        #expect(OCIDigest.of([]).description == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(OCIDigest.of(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func incrementalEqualsWhole() {
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var h = OCIDigest.Hasher()
        for start in stride(from: 0, to: bytes.count, by: 4093) {
            Array(bytes[start..<min(start + 4093, bytes.count)]).withUnsafeBytes { h.update($0) }
        }
        #expect(h.finish() == OCIDigest.of(bytes))
    }

    @Test func parsing() throws {
        let hex = String(repeating: "0f", count: 32)
        #expect(try OCIDigest(parsing: "sha256:" + hex).short == "0f0f0f0f0f0f")
        for bad in ["sha256:" + hex.uppercased(), "sha256:" + hex.dropLast(), "sha256:" + hex + "0", "sha512:" + hex + hex, hex, "sha256:", "", ":" + hex,
                    "sha256:" + String(repeating: "g", count: 64)] {
            #expect(throws: ImageStoreError.self, "\(bad)") { try OCIDigest(parsing: bad) }
        }
        do {
            _ = try OCIDigest(parsing: "sha512:" + hex + hex)
        } catch {
            #expect(error.message.contains("only sha256"))
        }
    }
}
