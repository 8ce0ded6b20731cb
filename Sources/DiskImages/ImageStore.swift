#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HostOS

/// The per-user, content-addressed store of disk images under
/// `<state>/images`: blobs by sha256, read-only (0444: a VM writes a qcow2
/// overlay on top, never the image), an index of references to them.
/// Nothing here fetches: only `pull` (in `ImageStore+Pull`) talks to a
/// registry, and only when asked.
public struct ImageStore: Sendable {
    /// `<state>/images`.
    public var root: String
    public var qemuImg: QemuImg
    /// GNU tar, which unpacks registry layers.
    public var tar: String
    /// Who still uses an image (the VM side's overlays, by name): `rm` of
    /// its last reference is refused while this is non-empty, and garbage
    /// collection keeps it. Until VMs exist nothing uses an image.
    public var users: @Sendable (OCIDigest) -> [String]

    public init(stateDirectory: String, qemuImg: QemuImg, tar: String = "/usr/bin/tar",
                users: @escaping @Sendable (OCIDigest) -> [String] = { _ in [] }) {
        root = stateDirectory + "/images"
        self.qemuImg = qemuImg
        self.tar = tar
        self.users = users
    }

    /// What a VM needs to put an overlay on an image.
    public struct Resolved: Sendable, Equatable {
        public var digest: OCIDigest
        /// The read-only blob; pass `format` explicitly, never let QEMU probe.
        public var path: String
        public var format: Format
        public var virtualSize: UInt64
        /// A file tree's regular files (`boot/vmlinuz`, no leading `/`); nil for a disk.
        public var files: [String]?

        public init(digest: OCIDigest, path: String, format: Format, virtualSize: UInt64, files: [String]? = nil) {
            self.digest = digest
            self.path = path
            self.format = format
            self.virtualSize = virtualSize
            self.files = files
        }
    }

    /// A row of `image ls`: one reference (or none, for an image kept only
    /// by its users) and its image.
    public struct Entry: Sendable, Equatable {
        /// `NAME:TAG`, `NAME@sha256:...`, or nil.
        public var reference: String?
        public var name: String?
        public var tag: String?
        public var image: Image
    }

    public func path(for digest: OCIDigest) -> String { blobDirectory + "/" + digest.hex }

    /// `NAME[:TAG]`, `NAME@sha256:...` or a bare `sha256:...` to the image.
    public func resolve(_ text: String) throws(ImageStoreError) -> Resolved {
        let index = try readIndex()
        let image = try find(try Selector(text), in: index).image
        return Resolved(digest: image.digest, path: path(for: image.digest), format: image.format, virtualSize: image.virtualSize, files: image.files)
    }

    /// An image and every reference to it.
    public func inspect(_ text: String) throws(ImageStoreError) -> (image: Image, refs: [String]) {
        let index = try readIndex()
        let image = try find(try Selector(text), in: index).image
        return (image, index.refs(to: image.digest))
    }

    /// Every reference, sorted by name and tag; images no reference names
    /// (kept by their users) last.
    public func list() throws(ImageStoreError) -> [Entry] {
        let index = try readIndex()
        var entries: [Entry] = []
        for (key, digest) in index.refs {
            guard let image = index.images[digest.description] else { continue }
            let parsed = try? Reference.parse(key)
            entries.append(Entry(reference: key, name: parsed?.name ?? key, tag: parsed?.tag, image: image))
        }
        entries.sort { ($0.name ?? "", $0.reference ?? "") < ($1.name ?? "", $1.reference ?? "") }
        for image in index.images.values.sorted(by: { $0.digest < $1.digest }) where index.refs(to: image.digest).isEmpty {
            entries.append(Entry(reference: nil, name: nil, tag: nil, image: image))
        }
        return entries
    }

    /// Copies `file` into the store (hashing as it copies) and names it `ref`.
    /// A copy, not a link: the store's blob must not change when the user's
    /// file does. Nothing is visible until the blob is complete and fsync'ed.
    /// A directory, or a tar archive, becomes a file tree (kernelBoot's
    /// kernel and initrd), not a disk. A gzip- or xz-compressed disk is
    /// stored decompressed (the same digest as the disk imported plain); a
    /// gzipped tar is kept as it came.
    public func importFile(_ file: String, as ref: Reference) async throws(ImageStoreError) -> Image {
        let key = try Self.tagKey(ref)
        try ensureDirectories()
        let absolute = file.hasPrefix("/") ? file : FileManager.default.currentDirectoryPath + "/" + file
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), isDirectory.boolValue {
            return try await importTree(file, source: .imported(absolute), refs: [key])
        }
        var temp = newTempPath()
        do throws(ImageStoreError) {
            var (digest, size) = try Self.copyHashing(from: file, to: temp)
            // A compressed disk (disk.img.xz, disk.qcow2.gz) is stored as the disk itself; a gzipped tar stays as it came.
            if let compression = Compression.sniff(FileDescriptors.head(temp, 6)) {
                let plain = newTempPath()
                do {
                    try await compression.decompress(temp, to: plain)
                } catch {
                    throw ImageStoreError(.unsupportedImage, "\(file) is \(compression.rawValue)-compressed, and \(error.message)")
                }
                if compression == .gzip && Self.looksLikeTar(plain) {
                    unlink(plain)
                } else {
                    unlink(temp)
                    temp = plain
                    (digest, size) = try Self.hash(temp)
                }
            }
            if Self.looksLikeTar(temp) {
                return try await add(temp: temp, digest: digest, fileSize: size, what: file, source: .imported(absolute), refs: [key],
                                     tree: try await treeFiles(temp, what: file))
            }
            return try await add(temp: temp, digest: digest, fileSize: size, what: file, source: .imported(absolute), refs: [key])
        } catch {
            unlink(temp)
            throw error
        }
    }

    /// Adds a file already in `tmp/` (a pulled disk): hashed in place, then
    /// checked and renamed in as `import` does.
    func adopt(_ temp: String, what: String, source: Source, refs: [String]) async throws(ImageStoreError) -> Image {
        let (digest, size) = try Self.hash(temp)
        return try await add(temp: temp, digest: digest, fileSize: size, what: what, source: source, refs: refs)
    }

    /// What `rm` did.
    public struct Removal: Sendable, Equatable {
        public var references: [String]
        /// Images whose last reference went, and their blobs with them.
        public var deleted: [OCIDigest]

        public init(references: [String], deleted: [OCIDigest]) {
            self.references = references
            self.deleted = deleted
        }
    }

    /// Removes references; an image whose last reference goes is deleted.
    /// All or nothing: a missing reference, or an image in use, removes none.
    public func remove(_ texts: [String]) throws(ImageStoreError) -> Removal {
        let selectors = try texts.map { (t) throws(ImageStoreError) in try Selector(t) }
        return try withIndexLock { (index: inout Index) throws(ImageStoreError) -> Removal in
            removeStaleTemps()
            var keys: Set<String> = []
            var digests: Set<OCIDigest> = []
            for s in selectors {
                let found = try find(s, in: index)
                keys.formUnion(found.keys)
                digests.insert(found.image.digest)
            }
            for d in digests {
                let left = index.refs(to: d).filter { !keys.contains($0) }
                let using = users(d)
                if left.isEmpty && !using.isEmpty {
                    throw ImageStoreError(.inUse, "image \(d.short) is in use by \(using.joined(separator: ", ")); stop or delete those first")
                }
            }
            for k in keys { index.refs[k] = nil }
            let deleted = collectGarbage(&index)
            return Removal(references: keys.sorted(), deleted: deleted)
        }
    }

    // MARK: - inside

    /// What `rm`, `inspect` and `resolve` accept.
    enum Selector {
        case digest(OCIDigest)
        case reference(Reference)

        init(_ text: String) throws(ImageStoreError) {
            if text.hasPrefix("sha256:"), let d = try? OCIDigest(parsing: text) {
                self = .digest(d)
            } else {
                self = .reference(try Reference.parse(text))
            }
        }
    }

    /// The image a selector names and the reference keys that name it there.
    private func find(_ s: Selector, in index: Index) throws(ImageStoreError) -> (image: Image, keys: [String]) {
        let hint = "; see `vtarget image ls`, or add it with `vtarget image pull` or `vtarget image import`"
        switch s {
        case .digest(let d):
            guard let image = index.images[d.description] else { throw ImageStoreError(.notFound, "no image \(d) in the store" + hint) }
            return (image, index.refs(to: d))
        case .reference(let r):
            if let d = r.digest {
                let key = r.name + "@" + d.description
                if let target = index.refs[key], let image = index.images[target.description] { return (image, [key]) }
                // The image's own digest under a name that has it.
                let named = index.refs(to: d).filter { (try? Reference.parse($0))?.name == r.name }
                if let image = index.images[d.description], !named.isEmpty { return (image, named) }
                throw ImageStoreError(.notFound, "no image \(r) in the store" + hint)
            }
            let key = r.name + ":" + (r.effectiveTag ?? "latest")
            guard let target = index.refs[key], let image = index.images[target.description] else {
                throw ImageStoreError(.notFound, "no image \(key) in the store" + hint)
            }
            return (image, [key])
        }
    }

    /// `NAME:TAG` for a name the user gives an image; a digest is computed, not given.
    static func tagKey(_ ref: Reference) throws(ImageStoreError) -> String {
        guard ref.digest == nil else {
            throw ImageStoreError(.badReference, "image name \"\(ref)\": give NAME[:TAG]; the store computes the digest itself")
        }
        return ref.name + ":" + (ref.effectiveTag ?? "latest")
    }

    func newTempPath(suffix: String = "") -> String {
        tempDirectory + "/\(getpid())-\(UInt64.random(in: 0...UInt64.max))" + suffix
    }

    /// Checks the complete temp file with qemu-img, makes it read-only and
    /// renames it in under the lock, with its references.
    /// A `tree` (its regular files) is a tar archive's blob: no disk, qemu-img is not asked.
    func add(temp: String, digest: OCIDigest, fileSize: UInt64, what: String, source: Source, refs: [String],
             tree: [String]? = nil) async throws(ImageStoreError) -> Image {
        let format: Format
        let virtualSize: UInt64
        if tree != nil {
            format = .tar
            virtualSize = fileSize
        } else {
            let info: ImageInfo
            do {
                info = try await qemuImg.info(path: temp)
            } catch {
                throw ImageStoreError(.unsupportedImage, "\(what): qemu-img cannot read it", cause: error)
            }
            format = Format(try Self.check(info, fileSize: fileSize, what: what))
            virtualSize = info.virtualSize
        }
        guard chmod(temp, 0o444) == 0 else { throw ImageStoreError(.io, "cannot make \(temp) read-only: \(String(cString: strerror(errno)))") }
        let created = Date().ISO8601Format()
        return try withIndexLock { (index: inout Index) throws(ImageStoreError) -> Image in
            removeStaleTemps()
            let blob = path(for: digest)
            if access(blob, F_OK) == 0 {
                unlink(temp)
            } else {
                guard rename(temp, blob) == 0 else { throw ImageStoreError(.io, "cannot rename \(temp) to \(blob): \(String(cString: strerror(errno)))") }
                StoreFiles.syncDirectory(blobDirectory)
            }
            let image = index.images[digest.description]
                ?? Image(digest: digest, format: format, virtualSize: virtualSize, fileSize: fileSize, created: created, source: source, files: tree)
            index.images[digest.description] = image
            for key in refs { index.refs[key] = digest }
            _ = collectGarbage(&index)
            return image
        }
    }

    /// Only self-contained qcow2 and raw disks: a backing file or an
    /// external data file would let an image read any file of the user's, and other formats are not what
    /// VMs here boot. Raw has no header, so a sector multiple is all that
    /// tells a disk from a stray file.
    static func check(_ info: ImageInfo, fileSize: UInt64, what: String) throws(ImageStoreError) -> QemuImg.Format {
        switch info.format {
        case "qcow2":
            if let backing = info.backingFilename {
                throw ImageStoreError(.unsupportedImage, "\(what): a qcow2 with a backing file (\(backing)); images must be self-contained: `qemu-img convert -O qcow2 \(what) flat.qcow2` first")
            }
            if let dataFile = info.formatSpecific?.data?.dataFile {
                throw ImageStoreError(.unsupportedImage, "\(what): a qcow2 with an external data file (\(dataFile)); images must be self-contained: `qemu-img convert -O qcow2 \(what) flat.qcow2` first")
            }
            return .qcow2
        case "raw":
            guard fileSize > 0, fileSize % 512 == 0 else {
                throw ImageStoreError(.unsupportedImage, "\(what): not a disk image (qemu-img sees no known format, and \(fileSize) bytes is not a whole number of 512-byte sectors); expected a qcow2 or raw disk")
            }
            return .raw
        default:
            throw ImageStoreError(.unsupportedImage, "\(what): format \(info.format); the store takes qcow2 or raw: `qemu-img convert -O qcow2 \(what) out.qcow2` first")
        }
    }

    static let chunk = 1 << 20

    /// Copies a regular file to a new `temp`, fsync'ed; its sha256 and size.
    static func copyHashing(from file: String, to temp: String) throws(ImageStoreError) -> (OCIDigest, UInt64) {
        let input = open(file, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw ImageStoreError(.badReference, "cannot open \(file): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        var st = stat()
        guard fstat(input, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw ImageStoreError(.badReference, "\(file) is not a regular file; expected a qcow2 or raw disk image file")
        }
        let output = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw ImageStoreError(.io, "cannot create \(temp): \(String(cString: strerror(errno)))") }
        defer { close(output) }
        var hasher = OCIDigest.Hasher()
        var total: UInt64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(input, buffer.baseAddress!, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw ImageStoreError(.io, "cannot read \(file): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            let part = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            hasher.update(part)
            guard StoreFiles.writeAll(output, part) else { throw ImageStoreError(.io, "cannot write \(temp): \(String(cString: strerror(errno)))") }
            total += UInt64(n)
        }
        guard fsync(output) == 0 else { throw ImageStoreError(.io, "cannot sync \(temp): \(String(cString: strerror(errno)))") }
        return (hasher.finish(), total)
    }

    /// The sha256 and size of a file, fsync'ed first (it is about to be renamed in).
    static func hash(_ path: String) throws(ImageStoreError) -> (OCIDigest, UInt64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ImageStoreError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var hasher = OCIDigest.Hasher()
        var total: UInt64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress!, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw ImageStoreError(.io, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += UInt64(n)
        }
        guard fsync(fd) == 0 else { throw ImageStoreError(.io, "cannot sync \(path): \(String(cString: strerror(errno)))") }
        return (hasher.finish(), total)
    }
}
