#if canImport(Glibc)
import Glibc
#endif
import Foundation

extension ImageStore {
    /// Where an image came from, as `image inspect` shows it.
    public struct Source: Codable, Sendable, Equatable {
        /// `import` or `pull`.
        public var type: String
        /// The imported file's absolute path.
        public var file: String?
        /// What was pulled, as the user wrote it.
        public var reference: String?
        /// The registry's digest of what it served (an index or a manifest).
        public var manifest: OCIDigest?
        /// `os/architecture` chosen from a manifest index.
        public var platform: String?

        public static func imported(_ file: String) -> Source { Source(type: "import", file: file) }
    }

    /// What an image's blob is: a disk (qcow2, raw) or a file tree (an
    /// uncompressed or gzip'ed tar: kernelBoot's kernel and initrd).
    public enum Format: String, Codable, Sendable {
        case raw, qcow2, tar

        public init(_ disk: QemuImg.Format) { self = disk == .qcow2 ? .qcow2 : .raw }

        /// The disk format QEMU opens it with; nil for a file tree.
        public var disk: QemuImg.Format? {
            switch self {
            case .raw: .raw
            case .qcow2: .qcow2
            case .tar: nil
            }
        }
    }

    /// One image in the store: its blob is `blobs/sha256/<hex>`, read-only.
    public struct Image: Codable, Sendable, Equatable {
        public var digest: OCIDigest
        public var format: Format
        /// A disk's size as the guest sees it; a file tree's blob size.
        public var virtualSize: UInt64
        public var fileSize: UInt64
        /// RFC 3339, UTC: when this content first entered the store.
        public var created: String
        public var source: Source
        /// A file tree's regular files, as `kernelPath` names them without
        /// the leading `/`; nil for a disk.
        public var files: [String]?
    }

    /// The whole index, one JSON file: `images` by digest, `refs` from
    /// `NAME:TAG` or `NAME@sha256:...` to a digest. One file, replaced whole
    /// under one lock, because every decision that matters (is this blob's
    /// last reference gone? does this tag move?) reads all references at
    /// once; readers (`ls`, `inspect`, a VM resolving its disk) need no lock,
    /// since a rename swaps the whole file.
    struct Index: Codable, Equatable {
        var version = 1
        var images: [String: Image] = [:]
        var refs: [String: OCIDigest] = [:]

        /// References still naming `digest`.
        func refs(to digest: OCIDigest) -> [String] {
            refs.filter { $0.value == digest }.map(\.key).sorted()
        }
    }

    var indexPath: String { root + "/index.json" }
    var lockPath: String { root + "/index.lock" }
    var blobDirectory: String { root + "/blobs/sha256" }
    var tempDirectory: String { root + "/tmp" }

    /// The index as last written; empty before the first import.
    func readIndex() throws(ImageStoreError) -> Index {
        guard let data = FileManager.default.contents(atPath: indexPath) else {
            if access(indexPath, F_OK) == 0 { throw ImageStoreError(.io, "cannot read \(indexPath)") }
            return Index()
        }
        do {
            return try JSONDecoder().decode(Index.self, from: data)
        } catch {
            throw ImageStoreError(.io, "\(indexPath) is damaged (remove it and the blobs beside it to start over)", cause: error)
        }
    }

    /// Runs `body` holding the store's lock (flock on `index.lock`), with
    /// the index to change; a changed index is written to a temp file,
    /// fsync'ed and renamed over the old one before the lock is let go.
    func withIndexLock<T>(_ body: (inout Index) throws(ImageStoreError) -> T) throws(ImageStoreError) -> T {
        try ensureDirectories()
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ImageStoreError(.io, "cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ImageStoreError(.io, "cannot lock \(lockPath): \(String(cString: strerror(errno)))") }
        }
        let before = try readIndex()
        var index = before
        let result = try body(&index)
        if index != before { try writeIndex(index) }
        return result
    }

    private func writeIndex(_ index: Index) throws(ImageStoreError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do { data = try encoder.encode(index) } catch { throw ImageStoreError(.io, "cannot encode the index", cause: error) }
        let temp = tempDirectory + "/\(getpid())-\(UInt64.random(in: 0...UInt64.max)).index"
        try StoreFiles.writeDurably(temp, Array(data))
        guard rename(temp, indexPath) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(temp)
            throw ImageStoreError(.io, "cannot replace \(indexPath): \(e)")
        }
        StoreFiles.syncDirectory(root)
    }

    func ensureDirectories() throws(ImageStoreError) {
        for dir in [root, root + "/blobs", blobDirectory, tempDirectory] {
            if mkdir(dir, 0o700) != 0 && errno != EEXIST {
                // The state directory itself may be missing on first use.
                do {
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                } catch {
                    throw ImageStoreError(.io, "cannot create \(dir)", cause: error)
                }
            }
        }
    }

    /// Temp files and pull scratch directories are named `<pid>-...`: those
    /// of processes gone (killed mid-import) are removed under the lock.
    func removeStaleTemps() {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: tempDirectory)) ?? []
        for e in entries {
            guard let pid = Int32(e.prefix { $0 != "-" }), pid > 0, !StoreFiles.processExists(pid) else { continue }
            try? FileManager.default.removeItem(atPath: tempDirectory + "/" + e)
        }
    }

    /// Drops images no reference names and nobody uses, then any blob the
    /// index does not know (one renamed in just before a crash).
    func collectGarbage(_ index: inout Index) -> [OCIDigest] {
        var removed: [OCIDigest] = []
        for (key, image) in index.images where index.refs(to: image.digest).isEmpty && users(image.digest).isEmpty {
            index.images[key] = nil
            removed.append(image.digest)
        }
        let blobs = (try? FileManager.default.contentsOfDirectory(atPath: blobDirectory)) ?? []
        for hex in blobs where index.images["sha256:" + hex] == nil {
            unlink(blobDirectory + "/" + hex)
        }
        if !removed.isEmpty { StoreFiles.syncDirectory(blobDirectory) }
        return removed.sorted()
    }
}

/// The few system calls the store needs for durable files.
enum StoreFiles {
    static func writeDurably(_ path: String, _ bytes: [UInt8]) throws(ImageStoreError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ImageStoreError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var failed = false
        bytes.withUnsafeBytes { failed = !writeAll(fd, $0) }
        if failed || fsync(fd) != 0 {
            let e = String(cString: strerror(errno))
            unlink(path)
            throw ImageStoreError(.io, "cannot write \(path): \(e)")
        }
    }

    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    /// A rename is durable only once its directory is synced.
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    static func processExists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }
}
