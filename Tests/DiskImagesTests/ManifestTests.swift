@testable import DiskImages
import Foundation
import Testing

@Suite struct ManifestTests {
    static func golden(_ name: String) throws -> [UInt8] {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
        return Array(try Data(contentsOf: dir.appendingPathComponent(name)))
    }

    @Test func ociManifestFromTheRegistry() throws {
        guard case .image(let m) = try OCIManifest.decode(Self.golden("oci-manifest.json"), contentType: "application/vnd.oci.image.manifest.v1+json") else {
            Issue.record("not an image manifest"); return
        }
        #expect(m.layers.count == 1)
        #expect(m.layers[0].mediaType == "application/vnd.oci.image.layer.v1.tar+gzip")
        #expect(m.layers[0].size == 627)
        #expect(m.config.digest.hex.hasPrefix("dbc29434"))
        try m.checkLayers()
    }

    @Test func dockerSchema2() throws {
        // No Content-Type: the document's own mediaType decides.
        guard case .image(let m) = try OCIManifest.decode(Self.golden("docker-manifest.json"), contentType: nil) else {
            Issue.record("not an image manifest"); return
        }
        #expect(m.mediaType == OCIManifest.MediaType.dockerManifest)
        #expect(m.layers[0].mediaType == "application/vnd.docker.image.rootfs.diff.tar.gzip")
        try m.checkLayers()
    }

    @Test func ociIndexPicksThePlatform() throws {
        guard case .index(let i) = try OCIManifest.decode(Self.golden("oci-index.json"), contentType: "application/vnd.oci.image.index.v1+json; charset=utf-8") else {
            Issue.record("not an index"); return
        }
        #expect(try i.select(architecture: "amd64").digest.hex.hasPrefix("b78588c1"))
        #expect(try i.select(architecture: "arm64").digest.hex.hasPrefix("29fe6851"))
        do {
            _ = try i.select(architecture: "riscv64")
            Issue.record("picked a platform the index lacks")
        } catch {
            #expect(error.code == .notFound)
            #expect(error.message.contains("offers linux/amd64, linux/arm64"), "\(error)")
        }
    }

    @Test func dockerListSkipsOtherOSesAndAttestations() throws {
        guard case .index(let i) = try OCIManifest.decode(Self.golden("docker-list.json"), contentType: "application/vnd.docker.distribution.manifest.list.v2+json") else {
            Issue.record("not a list"); return
        }
        #expect(try i.select(architecture: "amd64").digest.hex.hasPrefix("4444"), "windows/amd64 comes first and must not be picked")
        #expect(try i.select(architecture: "arm64").digest.hex.hasPrefix("2222"))
        #expect(try i.select(architecture: "arm64").platform?.description == "linux/arm64/v8")
    }

    @Test func refusals() throws {
        for (file, words) in [("docker-schema1.json", "schemaVersion 1"), ("oci-zstd-manifest.json", "tar+zstd"), ("oci-artifact.json", "application/spdx+json")] {
            let bytes = try Self.golden(file)
            do {
                guard case .image(let m) = try OCIManifest.decode(bytes, contentType: nil) else { Issue.record("\(file) decoded as an index"); continue }
                try m.checkLayers()
                Issue.record("\(file) accepted")
            } catch {
                #expect(error.message.contains(words), "\(file): \(error)")
            }
        }
        for bytes in [Array("not json".utf8), Array("{}".utf8), Array(#"{"schemaVersion":2,"mediaType":"text/html"}"#.utf8),
                      Array(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#.utf8),
                      Array(#"{"schemaVersion":2,"manifests":[{"digest":"sha256:abc","size":1}]}"#.utf8)] {
            #expect(throws: ImageStoreError.self, "\(String(decoding: bytes, as: UTF8.self))") { try OCIManifest.decode(bytes, contentType: nil) }
        }
        let empty = OCIManifest.Image(schemaVersion: 2, mediaType: nil, config: .init(digest: OCIDigest.of([]), size: 0), layers: [])
        #expect(throws: ImageStoreError.self) { try empty.checkLayers() }
    }

    @Test func architectures() throws {
        #expect(try OCIManifest.architecture("x86_64") == "amd64")
        #expect(try OCIManifest.architecture("aarch64") == "arm64")
        #expect(throws: ImageStoreError.self) { try OCIManifest.architecture("AMD64") }
    }

    @Test func bearerChallenges() {
        let c = OCIRegistry.Challenge(parsing: #"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#)
        #expect(c?.scheme == "bearer")
        #expect(c?.parameters == ["realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull"])
        #expect(OCIRegistry.Challenge(parsing: #"Basic realm="Registry Realm""#)?.scheme == "basic")
        #expect(OCIRegistry.Challenge(parsing: #"Bearer realm=https://x/t, service=s"#)?.parameters == ["realm": "https://x/t", "service": "s"])
        #expect(OCIRegistry.Challenge(parsing: #"Bearer realm="a\"b""#)?.parameters["realm"] == #"a"b"#)
        #expect(OCIRegistry.Challenge(parsing: #"Bearer realm="unterminated"#) == nil)
        #expect(OCIRegistry.Challenge(parsing: "") == nil)
    }
}
