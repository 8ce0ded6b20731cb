import DiskImages
import Foundation
import Testing

/// gzip and xz told from their first bytes and undone by the system's
/// tools; a broken stream is an error that leaves no output file. And the
/// qcow2 header's size field, read without qemu-img.
@Suite struct CompressionTests {
    @Test func sniffsByMagicNotByName() {
        #expect(Compression.sniff([0x1F, 0x8B, 0x08, 0x00]) == .gzip)
        #expect(Compression.sniff([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 0x00]) == .xz)
        #expect(Compression.sniff([0xFD, 0x37, 0x7A, 0x58, 0x5A]) == nil, "a cut xz magic")
        #expect(Compression.sniff([0x51, 0x46, 0x49, 0xFB]) == nil)
        #expect(Compression.sniff([0x1F]) == nil)
        #expect(Compression.sniff([]) == nil)
    }

    @Test(arguments: Compression.allCases) func decompressesWhatItsToolCompressed(_ c: Compression) async throws {
        let dir = NSTemporaryDirectory() + "vt-compress-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plain = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        try Data(plain).write(to: URL(fileURLWithPath: dir + "/disk"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: c.tool)
        p.arguments = ["-k", dir + "/disk"]
        try p.run()
        p.waitUntilExit()
        let packed = dir + "/disk." + (c == .gzip ? "gz" : "xz")
        let bytes = try #require(FileManager.default.contents(atPath: packed))
        #expect(Compression.sniff(bytes.prefix(8)) == c)

        try await c.decompress(packed, to: dir + "/out")
        #expect(FileManager.default.contents(atPath: dir + "/out") == Data(plain))
        // The destination must not exist: never written over.
        await #expect(throws: ImageStoreError.self) { try await c.decompress(packed, to: dir + "/out") }
        #expect(FileManager.default.contents(atPath: dir + "/out") == Data(plain))

        // Cut short: the tool's complaint, and nothing left behind.
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: dir + "/cut"))
        await #expect {
            try await c.decompress(dir + "/cut", to: dir + "/cut.out")
        } throws: { error in
            guard let e = error as? ImageStoreError else { return false }
            return e.code == .unsupportedImage && e.message.contains(c.tool + " -dc could not decompress it")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/cut.out"))
    }

    @Test func qcow2HeaderSize() {
        var header: [UInt8] = [0x51, 0x46, 0x49, 0xFB, 0, 0, 0, 3] + [UInt8](repeating: 0, count: 16)
        header += [0, 0, 0, 1, 0x80, 0, 0, 0]  // 6 GiB
        #expect(QCOW2Header.virtualSize(header) == 6 << 30)
        #expect(QCOW2Header.virtualSize(header.prefix(31)) == nil, "too short")
        header[3] = 0xFA
        #expect(QCOW2Header.virtualSize(header) == nil, "not qcow2")
        #expect(QCOW2Header.virtualSize(ofFile: "/nonexistent/x.qcow2") == nil)
    }
}
