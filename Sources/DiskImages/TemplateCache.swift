#if canImport(Glibc)
import Glibc
#endif
import HostOS
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Small files a tool makes the same way every time from the same inputs
/// (a qcow2 overlay on a store image, an empty qcow2 of a size, a seed ISO
/// of given files), made once by the tool and then copied for each start.
/// A VM start waited 30-60 ms for `qemu-img create` and `genisoimage` to
/// load their libraries and write a few hundred KiB; a copy takes well
/// under a millisecond. Every start still gets its own file.
///
/// An entry is `<directory>/<key hex>`: 32 bytes of sha256(key, contents),
/// then the contents. The key is a hash of everything that goes into the
/// file (the tool's own identity included), so an entry can never stand
/// for other inputs; the seal catches a truncated, edited or misplaced
/// entry, which is then made again. Entries are written to a temp name and
/// renamed in, so two starts making one entry at once each get a whole file.
public struct TemplateCache: Sendable {
    /// What a template is made of, hashed: every field is length-prefixed,
    /// so no two lists of fields hash alike.
    public struct Key: Sendable, Equatable, CustomStringConvertible {
        public let digest: OCIDigest

        public init(_ fields: [[UInt8]]) {
            var h = OCIDigest.Hasher()
            for f in fields {
                h.update(Array("\(f.count):".utf8))
                h.update(f)
            }
            digest = h.finish()
        }

        public init(_ fields: [String]) { self.init(fields.map { Array($0.utf8) }) }

        public var description: String { digest.hex }
    }

    /// `<state>/cache/templates`.
    public var directory: String
    /// Entries kept; the least recently used go first.
    public var capacity: Int
    /// Larger files are not kept (a raw disk of many GiB, say): the point
    /// is skipping a tool's start-up, not copying data.
    public var maxFileBytes: Int

    public init(directory: String, capacity: Int = 256, maxFileBytes: Int = 4 << 20) {
        self.directory = directory
        self.capacity = capacity
        self.maxFileBytes = maxFileBytes
    }

    public init(stateDirectory: String) {
        self.init(directory: stateDirectory + "/cache/templates")
    }

    static let sealBytes = 32

    /// `destination` as `make` would write it: copied from the entry for
    /// `key`, else made by `make(destination)` and kept for next time.
    /// `destination` is replaced whole; a failure to keep the entry only
    /// costs the next start a `make`.
    public func file(_ key: Key, at destination: String, make: (String) async throws -> Void) async throws {
        let entry = directory + "/" + key.digest.hex
        if let contents = sealedContents(entry, key: key) {
            try Self.write(contents, to: destination)
            // Touched, so eviction takes the least recently used.
            utimes(entry, nil)
            return
        }
        try await make(destination)
        keep(destination, as: entry, key: key)
    }

    /// The entry's contents when its seal holds (a slice of the one read:
    /// a hit copies its few hundred KiB once, into the destination, and
    /// zero-fills nothing); a bad entry is removed.
    func sealedContents(_ entry: String, key: Key) -> ArraySlice<UInt8>? {
        let fd = open(entry, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        let size = Int(st.st_size)
        guard size >= Self.sealBytes, size <= maxFileBytes + Self.sealBytes else {
            unlink(entry)
            return nil
        }
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            initialized = Self.readFully(fd, UnsafeMutableRawBufferPointer(buffer))
        }
        guard bytes.count == size else {
            unlink(entry)
            return nil
        }
        let contents = bytes[Self.sealBytes...]
        guard bytes[..<Self.sealBytes].elementsEqual(contents.withUnsafeBytes { Self.seal(key, $0) }) else {
            unlink(entry)
            return nil
        }
        return contents
    }

    /// Stores what `make` wrote at `made` under `entry`, sealed. Best
    /// effort: a full disk or a read-only state directory loses nothing
    /// but the next start's time.
    func keep(_ made: String, as entry: String, key: Key) {
        let fd = open(made, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= maxFileBytes else { close(fd); return }
        var contents = [UInt8](repeating: 0, count: Int(st.st_size))
        let got = contents.withUnsafeMutableBytes { Self.readFully(fd, $0) }
        close(fd)
        guard got == contents.count else { return }
        guard (try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])) != nil else { return }
        let temp = directory + "/.tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        do {
            try Self.write(contents.withUnsafeBytes { Self.seal(key, $0) } + contents, to: entry, staging: temp, sync: true)
        } catch {
            return
        }
        evict()
    }

    /// sha256 of the key and the contents: an entry renamed to another
    /// key's name does not pass.
    static func seal(_ key: Key, _ contents: UnsafeRawBufferPointer) -> [UInt8] {
        var h = OCIDigest.Hasher()
        h.update(Array(key.digest.hex.utf8))
        h.update(contents)
        let hex = Array(h.finish().hex.utf8)
        return (0..<sealBytes).map { i in nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]) }
    }

    private static func nibble(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }

    /// Beyond `capacity` entries, the least recently used go, and temp
    /// files of writers that died (over an hour old).
    func evict() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        var entries: [(name: String, used: Int)] = []
        let now = time(nil)
        for name in names {
            var st = stat()
            guard lstat(directory + "/" + name, &st) == 0 else { continue }
            if name.hasPrefix(".tmp-") {
                if now - st.st_mtim.tv_sec > 3600 { unlink(directory + "/" + name) }
            } else {
                entries.append((name, st.st_mtim.tv_sec))
            }
        }
        guard entries.count > capacity else { return }
        for old in entries.sorted(by: { $0.used < $1.used }).prefix(entries.count - capacity) {
            unlink(directory + "/" + old.name)
        }
    }

    /// `bytes` at `path`, whole (`FileDescriptors.replaceFile`).
    static func write(_ bytes: some ContiguousBytes, to path: String, staging: String? = nil, sync: Bool = false) throws(ImageStoreError) {
        do throws(RuntimeError) {
            try FileDescriptors.replaceFile(path, with: bytes, staging: staging, sync: sync)
        } catch {
            throw ImageStoreError(.io, error.message, cause: error)
        }
    }

    /// Bytes read until the buffer is full or the file ends.
    static func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
        var done = 0
        while done < buffer.count {
            let n = read(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        return done
    }

    /// A file's identity for a key: path, size, modification time and
    /// inode. A tool upgraded or a base image replaced changes it, so no
    /// entry made by the old one is used; nil when the file is missing.
    public static func identity(of path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return "\(path) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ino) \(st.st_dev)"
    }
}
