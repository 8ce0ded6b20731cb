import Foundation

/// What a registry serves for `/v2/<repo>/manifests/<ref>`: an image
/// manifest (OCI or Docker schema 2) or an index of them per platform (OCI
/// image index, Docker manifest list). Only the fields a pull reads.
public enum OCIManifest: Sendable, Equatable {
    case image(Image)
    case index(Index)

    public enum MediaType {
        public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
        public static let ociIndex = "application/vnd.oci.image.index.v1+json"
        public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
        public static let dockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
        /// What a pull accepts, most preferred first.
        public static let accepted = [ociIndex, ociManifest, dockerList, dockerManifest]
    }

    /// A blob or manifest by digest and size.
    public struct Descriptor: Sendable, Equatable, Decodable {
        public var mediaType: String?
        public var digest: OCIDigest
        public var size: UInt64
        public var platform: Platform?
    }

    public struct Platform: Sendable, Equatable, Decodable, CustomStringConvertible {
        public var os: String
        public var architecture: String
        public var variant: String?

        public var description: String { os + "/" + architecture + (variant.map { "/" + $0 } ?? "") }
    }

    public struct Image: Sendable, Equatable, Decodable {
        public var schemaVersion: Int
        public var mediaType: String?
        public var config: Descriptor
        public var layers: [Descriptor]
    }

    public struct Index: Sendable, Equatable, Decodable {
        public var schemaVersion: Int
        public var mediaType: String?
        public var manifests: [Descriptor]
    }

    /// The largest manifest read: real ones are a few KiB.
    public static let maximumSize = 4 << 20

    /// Decodes `bytes` by the media type the registry named (its
    /// Content-Type), else by the document's own `mediaType`, else by shape.
    public static func decode(_ bytes: [UInt8], contentType: String?) throws(ImageStoreError) -> OCIManifest {
        let data = Data(bytes)
        struct Probe: Decodable { var schemaVersion: Int?; var mediaType: String?; var manifests: [Descriptor]?; var layers: [Descriptor]? }
        let probe: Probe
        do { probe = try JSONDecoder().decode(Probe.self, from: data) } catch {
            throw ImageStoreError(.registry, "the registry's manifest is not JSON a pull can read", cause: error)
        }
        let declared = contentType.flatMap { $0.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } }
        let type = [declared, probe.mediaType].compactMap { $0 }.first { MediaType.accepted.contains($0) }
            ?? probe.mediaType ?? (probe.manifests != nil ? MediaType.ociIndex : probe.layers != nil ? MediaType.ociManifest : declared ?? "none")
        guard probe.schemaVersion == 2 else {
            throw ImageStoreError(.registry, "manifest schemaVersion \(probe.schemaVersion.map(String.init) ?? "missing") (\(type)); only schema 2 (OCI or Docker v2) is supported")
        }
        do {
            switch type {
            case MediaType.ociIndex, MediaType.dockerList:
                return .index(try JSONDecoder().decode(Index.self, from: data))
            case MediaType.ociManifest, MediaType.dockerManifest:
                return .image(try JSONDecoder().decode(Image.self, from: data))
            default:
                throw ImageStoreError(.registry, "manifest media type \(type); expected one of \(MediaType.accepted.joined(separator: ", "))")
            }
        } catch let e as ImageStoreError {
            throw e
        } catch {
            throw ImageStoreError(.registry, "the registry's \(type) is missing a field a pull needs", cause: error)
        }
    }

    /// Normalises what users write for an architecture to OCI's spelling.
    public static func architecture(_ name: String) throws(ImageStoreError) -> String {
        switch name {
        case "amd64", "x86_64": return "amd64"
        case "arm64", "aarch64": return "arm64"
        default: throw ImageStoreError(.badReference, "--arch \(name): expected amd64 (x86_64) or arm64 (aarch64)")
        }
    }
}

extension OCIManifest.Index {
    /// The image for `linux/<architecture>`; a registry index without it is
    /// an error listing what it has.
    public func select(architecture: String) throws(ImageStoreError) -> OCIManifest.Descriptor {
        if let d = manifests.first(where: { $0.platform?.os == "linux" && $0.platform?.architecture == architecture }) {
            return d
        }
        let offered = manifests.compactMap { $0.platform?.description }
        throw ImageStoreError(.notFound, "the image has no linux/\(architecture) variant; it offers \(offered.isEmpty ? "no platforms" : offered.joined(separator: ", ")) (choose with --arch)")
    }
}

extension OCIManifest.Image {
    /// Layer media types a pull unpacks (tar, gzip'ed or not): anything
    /// else (zstd, non-container artifacts) is refused by name.
    public static let layerTypes: Set<String> = [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ]

    public func checkLayers() throws(ImageStoreError) {
        guard !layers.isEmpty else { throw ImageStoreError(.layout, "the image has no layers, so no /disk/") }
        for l in layers {
            let t = l.mediaType ?? "none"
            guard Self.layerTypes.contains(t) else {
                throw ImageStoreError(.registry, "layer \(l.digest.short) has media type \(t); a pull unpacks tar or tar+gzip layers only")
            }
        }
    }
}
