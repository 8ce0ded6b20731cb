#if canImport(Glibc)
import Glibc
#endif
import AsyncHTTPClient
import Foundation
import NIOCore

extension ImageStore {
    public struct PullOptions: Sendable {
        /// Plain http to a registry that is not on loopback.
        public var insecure = false
        /// OCI's name: `amd64` or `arm64`, picked from a manifest index.
        public var architecture = "amd64"
        /// The local name instead of the pulled reference.
        public var name: Reference?

        public init(insecure: Bool = false, architecture: String = "amd64", name: Reference? = nil) {
            self.insecure = insecure
            self.architecture = architecture
            self.name = name
        }
    }

    public struct PullResult: Sendable {
        public var image: Image
        /// The references the pull set.
        public var references: [String]
    }

    /// Fetches `ref` from its registry (the only code in vtarget that
    /// does), verifies every byte against the manifest's digests, takes the
    /// one disk under `/disk/` and adds it like `import`; an image with no
    /// `/disk/` (a kernelBoot container) is added as a file tree. On any failure
    /// nothing is left: the downloads live in a scratch directory under
    /// `tmp/` that goes with the pull.
    public func pull(_ ref: Reference, options: PullOptions = .init(),
                     progress: @Sendable (String) -> Void = { _ in }) async throws(ImageStoreError) -> PullResult {
        guard let registry = ref.registry else {
            throw ImageStoreError(.badReference, "image reference \"\(ref)\": name the registry, as HOST[:PORT]/REPOSITORY[:TAG] (e.g. 127.0.0.1:5000/cirros:latest); no default registry is assumed")
        }
        let local = try options.name.map { (n) throws(ImageStoreError) in try Self.tagKey(n) }
        let plain = ref.registryIsLoopback || options.insecure
        let base = (plain ? "http://" : "https://") + registry
        try ensureDirectories()
        let scratch = newTempPath(suffix: ".pull")
        guard mkdir(scratch, 0o700) == 0 else { throw ImageStoreError(.io, "cannot create \(scratch): \(String(cString: strerror(errno)))") }
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        return try await HTTPDownload.withClient { client throws(ImageStoreError) in
            var registryClient = OCIRegistry(client: client, base: base, repository: ref.repository, plainHTTPAllowed: plain)
            return try await pull(ref, local: local, options: options, from: &registryClient, scratch: scratch, progress: progress)
        }
    }

    private func pull(_ ref: Reference, local: String?, options: PullOptions, from registry: inout OCIRegistry, scratch: String,
                      progress: @Sendable (String) -> Void) async throws(ImageStoreError) -> PullResult {
        let top = try await registry.manifest(ref.digest?.description ?? ref.effectiveTag ?? "latest")
        if let wanted = ref.digest, top.digest != wanted {
            throw ImageStoreError(.verification, "\(registry.base) served a manifest for \(ref) whose sha256 is \(top.digest); refused")
        }
        var platform: String?
        let image: OCIManifest.Image
        switch try OCIManifest.decode(top.bytes, contentType: top.contentType) {
        case .image(let m):
            image = m
        case .index(let index):
            let chosen = try index.select(architecture: options.architecture)
            platform = chosen.platform?.description
            let inner = try await registry.manifest(chosen.digest.description)
            guard inner.digest == chosen.digest, UInt64(inner.bytes.count) == chosen.size else {
                throw ImageStoreError(.verification, "\(registry.base) served manifest \(chosen.digest) with sha256 \(inner.digest) and \(inner.bytes.count) bytes (expected \(chosen.size)); refused")
            }
            guard case .image(let m) = try OCIManifest.decode(inner.bytes, contentType: inner.contentType) else {
                throw ImageStoreError(.registry, "\(ref): an index inside an index; expected the \(platform ?? "") entry to be an image manifest")
            }
            image = m
        }
        try image.checkLayers()

        var listings: [[String]] = []
        var files: [String] = []
        for (i, layer) in image.layers.enumerated() {
            progress("pulling layer \(i + 1)/\(image.layers.count) \(layer.digest.short) (\(layer.size) bytes)")
            let file = scratch + "/layer-\(i)"
            try await registry.blob(layer.digest, size: layer.size, to: file)
            files.append(file)
            listings.append(try await OCILayers.list(tar: tar, layer: file))
        }
        let disks = OCILayers.diskFiles(listings)
        let root = scratch + "/root"
        guard mkdir(root, 0o700) == 0 else { throw ImageStoreError(.io, "cannot create \(root): \(String(cString: strerror(errno)))") }
        let refs = refNames(ref, local: local, served: top.digest)
        let source = Source(type: "pull", reference: ref.description, manifest: top.digest, platform: platform)
        // No /disk/: a kernelBoot container (KubeVirt's `kernelBoot.container`
        // names files of it, e.g. /boot/vmlinuz), kept as a file tree.
        if disks.isEmpty, OCILayers.hasFiles(listings) {
            progress("no /disk/ in \(ref): keeping its files as a file tree (kernelBoot)")
            try await OCILayers.unpackAll(tar: tar, layers: files, listings: listings, into: root)
            for f in files { unlink(f) }
            let added = try await importTree(root, source: source, refs: refs)
            return PullResult(image: added, references: refs)
        }
        let member = try OCILayers.theDisk(disks)
        let disk = try await OCILayers.extract(tar: tar, layer: files[member.layer], member: member, into: root)
        // The layers are verified and no longer needed: free their space first.
        for f in files { unlink(f) }
        let added = try await adopt(disk, what: "\(ref) /\(member.path)", source: source, refs: refs)
        return PullResult(image: added, references: refs)
    }

    /// The references a pull sets: the local name, or the pulled name with
    /// its tag and the digest of what was served.
    private func refNames(_ ref: Reference, local: String?, served: OCIDigest) -> [String] {
        var refs: [String]
        if let local {
            refs = [local]
        } else {
            refs = [ref.name + "@" + (ref.digest ?? served).description]
            if let tag = ref.tag ?? (ref.digest == nil ? "latest" : nil) { refs.insert(ref.name + ":" + tag, at: 0) }
        }
        return refs
    }
}
