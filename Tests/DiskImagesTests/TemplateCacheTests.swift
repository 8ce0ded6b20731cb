@testable import DiskImages
import Foundation
import Synchronization
import Testing

/// The start-up templates: made once, copied after, never stale, never shared.
@Suite struct TemplateCacheTests {
    /// A scratch directory with a cache in it, removed at the end.
    struct Scratch {
        let dir = "/tmp/vt-templates-\(UInt32.random(in: 0...UInt32.max))"
        var cache: TemplateCache { TemplateCache(stateDirectory: dir + "/state") }

        init() throws { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        func remove() { try? FileManager.default.removeItem(atPath: dir) }
        func bytes(_ name: String) -> [UInt8]? { FileManager.default.contents(atPath: dir + "/" + name).map(Array.init) }
        func entries() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: cache.directory)) ?? []).sorted() }
        func inode(_ name: String) -> UInt64 {
            var st = stat()
            return stat(dir + "/" + name, &st) == 0 ? UInt64(st.st_ino) : 0
        }
    }

    /// A `make` that writes `contents` and counts its calls.
    final class Maker: Sendable {
        let calls = Mutex(0)
        let contents: [UInt8]
        init(_ contents: [UInt8]) { self.contents = contents }
        func make(_ path: String) throws {
            calls.withLock { $0 += 1 }
            try Data(contents).write(to: URL(fileURLWithPath: path))
        }
        var count: Int { calls.withLock { $0 } }
    }

    @Test func madeOnceThenCopied() async throws {
        let s = try Scratch()
        defer { s.remove() }
        let maker = Maker(Array("template \(UInt32.random(in: 0...UInt32.max))".utf8))
        let key = TemplateCache.Key(["kind", "input"])
        for name in ["a", "b", "c"] {
            try await s.cache.file(key, at: s.dir + "/" + name) { try maker.make($0) }
            #expect(s.bytes(name) == maker.contents)
        }
        #expect(maker.count == 1)
        #expect(s.entries() == [key.digest.hex])
        // Three files of their own, not links to one.
        #expect(Set(["a", "b", "c"].map(s.inode)).count == 3)
        // A copy replaces what was there, whole, and leaves no temp file beside it.
        try Data("old".utf8).write(to: URL(fileURLWithPath: s.dir + "/a"))
        try await s.cache.file(key, at: s.dir + "/a") { try maker.make($0) }
        #expect(s.bytes("a") == maker.contents)
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.dir).sorted() == ["a", "b", "c", "state"])
    }

    @Test func anyChangedInputIsAnotherKey() async throws {
        let s = try Scratch()
        defer { s.remove() }
        // Length-prefixed fields: moving a boundary is another key.
        #expect(TemplateCache.Key(["ab", "c"]) != TemplateCache.Key(["a", "bc"]))
        #expect(TemplateCache.Key(["a", ""]) != TemplateCache.Key(["a"]))
        #expect(TemplateCache.Key(["a", "b"]) == TemplateCache.Key([Array("a".utf8), Array("b".utf8)]))
        let one = Maker(Array("one".utf8)), two = Maker(Array("two".utf8))
        try await s.cache.file(.init(["k", "1"]), at: s.dir + "/x") { try one.make($0) }
        try await s.cache.file(.init(["k", "2"]), at: s.dir + "/y") { try two.make($0) }
        #expect(s.bytes("x") == one.contents)
        #expect(s.bytes("y") == two.contents)
        #expect(one.count == 1 && two.count == 1)
        #expect(s.entries().count == 2)
    }

    /// Truncated, edited, emptied, a directory, or another key's entry
    /// under this name: never copied, made again, and the entry is good after.
    @Test func aBadEntryIsMadeAgain() async throws {
        let s = try Scratch()
        defer { s.remove() }
        let key = TemplateCache.Key(["bad"])
        let maker = Maker(Array(repeating: 0x5a, count: 5000))
        try await s.cache.file(key, at: s.dir + "/first") { try maker.make($0) }
        let entry = s.cache.directory + "/" + key.digest.hex
        let good = try #require(FileManager.default.contents(atPath: entry))
        let other = Maker(Array("other".utf8))
        try await s.cache.file(.init(["other"]), at: s.dir + "/o") { try other.make($0) }
        let otherEntry = try #require(FileManager.default.contents(atPath: s.cache.directory + "/" + TemplateCache.Key(["other"]).digest.hex))
        var flipped = good
        flipped[good.count - 1] ^= 1
        var sealFlipped = good
        sealFlipped[0] ^= 1
        let damaged: [(String, Data)] = [("truncated", good.prefix(good.count - 100)), ("a byte flipped", flipped),
                                         ("the seal flipped", sealFlipped), ("empty", Data()), ("shorter than a seal", good.prefix(10)),
                                         ("another key's entry", otherEntry)]
        for (what, bytes) in damaged {
            try bytes.write(to: URL(fileURLWithPath: entry))
            let before = maker.count
            try await s.cache.file(key, at: s.dir + "/again") { try maker.make($0) }
            #expect(maker.count == before + 1, "\(what): copied instead of made")
            #expect(s.bytes("again") == maker.contents, "\(what)")
            #expect(FileManager.default.contents(atPath: entry) == good, "\(what): entry not rebuilt")
        }
        // Not a regular file: made, and nothing is read through it.
        unlink(entry)
        try FileManager.default.createDirectory(atPath: entry, withIntermediateDirectories: false)
        let before = maker.count
        try await s.cache.file(key, at: s.dir + "/dir") { try maker.make($0) }
        #expect(maker.count == before + 1)
        #expect(s.bytes("dir") == maker.contents)
    }

    @Test func aFailedMakeKeepsNothing() async throws {
        let s = try Scratch()
        defer { s.remove() }
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await s.cache.file(.init(["fails"]), at: s.dir + "/x") { _ in throw Refused() }
        }
        #expect(s.entries().isEmpty)
        #expect(s.bytes("x") == nil)
        // A destination that cannot be written is an error, not a silent miss.
        let maker = Maker(Array("m".utf8))
        try await s.cache.file(.init(["dest"]), at: s.dir + "/m") { try maker.make($0) }
        await #expect(throws: ImageStoreError.self) {
            try await s.cache.file(.init(["dest"]), at: s.dir + "/no/such/dir/m") { try maker.make($0) }
        }
    }

    @Test func largeFilesAreNotKept() async throws {
        let s = try Scratch()
        defer { s.remove() }
        var cache = s.cache
        cache.maxFileBytes = 1000
        let big = Maker(Array(repeating: 1, count: 1001))
        for name in ["a", "b"] { try await cache.file(.init(["big"]), at: s.dir + "/" + name) { try big.make($0) } }
        #expect(big.count == 2)
        #expect(s.entries().isEmpty)
    }

    @Test func theLeastRecentlyUsedGo() async throws {
        let s = try Scratch()
        defer { s.remove() }
        var cache = s.cache
        cache.capacity = 2
        let maker = Maker(Array("x".utf8))
        try await cache.file(.init(["1"]), at: s.dir + "/1") { try maker.make($0) }
        try await cache.file(.init(["2"]), at: s.dir + "/2") { try maker.make($0) }
        // 1 used after 2 (times set, not slept for): 2 is the oldest when 3 comes.
        let old = timeval(tv_sec: time(nil) - 100, tv_usec: 0)
        _ = [old, old].withUnsafeBufferPointer { utimes(cache.directory + "/" + TemplateCache.Key(["2"]).digest.hex, $0.baseAddress) }
        try await cache.file(.init(["1"]), at: s.dir + "/1b") { try maker.make($0) }
        try await cache.file(.init(["3"]), at: s.dir + "/3") { try maker.make($0) }
        #expect(Set(s.entries()) == Set(["1", "3"].map { TemplateCache.Key([$0]).digest.hex }))
        // A writer's temp file that is over an hour old goes too; a fresh one stays (its writer may be busy).
        let stale = cache.directory + "/.tmp-1-1", fresh = cache.directory + "/.tmp-1-2"
        FileManager.default.createFile(atPath: stale, contents: Data())
        FileManager.default.createFile(atPath: fresh, contents: Data())
        let hoursAgo = timeval(tv_sec: time(nil) - 7200, tv_usec: 0)
        _ = [hoursAgo, hoursAgo].withUnsafeBufferPointer { utimes(stale, $0.baseAddress) }
        cache.evict()
        #expect(access(stale, F_OK) != 0)
        #expect(access(fresh, F_OK) == 0)
    }

    /// Many starts at once, some making the entry, some copying it: each
    /// gets a whole file of its own, and writing one changes no other.
    @Test func startsAtOnceShareNoFile() async throws {
        let s = try Scratch()
        defer { s.remove() }
        let maker = Maker(Array(repeating: 7, count: 200_000))
        let key = TemplateCache.Key(["concurrent"])
        let cache = s.cache
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<12 {
                group.addTask { try await cache.file(key, at: s.dir + "/d\(i)") { try maker.make($0) } }
            }
            try await group.waitForAll()
        }
        let names = (0..<12).map { "d\($0)" }
        #expect(names.allSatisfy { s.bytes($0) == maker.contents })
        #expect(Set(names.map(s.inode)).count == 12)
        #expect(maker.count >= 1)
        let fd = open(s.dir + "/d0", O_WRONLY)
        #expect(pwrite(fd, [UInt8(9)], 1, 0) == 1)
        close(fd)
        #expect(names.dropFirst().allSatisfy { s.bytes($0) == maker.contents })
        #expect(s.entries() == [key.digest.hex])
        #expect(cache.sealedContents(cache.directory + "/" + key.digest.hex, key: key).map(Array.init) == maker.contents)
    }

    // MARK: the real tools

    static let qemuImg = QemuImg(executable: "/usr/bin/qemu-img")

    /// An overlay from the cache is byte for byte what qemu-img makes, and
    /// qemu-img reads it as an overlay on its base.
    @Test func overlaysAreWhatQemuImgWrites() async throws {
        let s = try Scratch()
        defer { s.remove() }
        let base = s.dir + "/base.qcow2"
        try await Self.qemuImg.create(path: base, format: .qcow2, size: 3 << 20)
        let backing = QemuImg.Backing(path: base, format: .qcow2)
        try await Self.qemuImg.create(path: s.dir + "/plain.qcow2", format: .qcow2, size: nil, backing: backing)
        for name in ["o1.qcow2", "o2.qcow2"] {
            try await Self.qemuImg.create(path: s.dir + "/" + name, format: .qcow2, size: nil, backing: backing, templates: s.cache)
            #expect(s.bytes(name) == s.bytes("plain.qcow2"))
        }
        #expect(s.entries().count == 1)
        let info = try await Self.qemuImg.info(path: s.dir + "/o2.qcow2")
        #expect(info.virtualSize == 3 << 20)
        #expect(info.backingFilename == base)
        // The base replaced by a larger one: another key, and the overlay takes its size.
        unlink(base)
        try await Self.qemuImg.create(path: base, format: .qcow2, size: 5 << 20)
        try await Self.qemuImg.create(path: s.dir + "/o3.qcow2", format: .qcow2, size: nil, backing: backing, templates: s.cache)
        #expect(try await Self.qemuImg.info(path: s.dir + "/o3.qcow2").virtualSize == 5 << 20)
        #expect(s.entries().count == 2)
        // Empty disks by size; a missing base is qemu-img's error, as without the cache.
        try await Self.qemuImg.create(path: s.dir + "/e.qcow2", format: .qcow2, size: 7 << 20, templates: s.cache)
        #expect(try await Self.qemuImg.info(path: s.dir + "/e.qcow2").virtualSize == 7 << 20)
        await #expect(throws: QemuImgError.self) {
            try await Self.qemuImg.create(path: s.dir + "/m.qcow2", format: .qcow2, size: nil,
                                          backing: .init(path: s.dir + "/missing.qcow2", format: .qcow2), templates: s.cache)
        }
        #expect(s.entries().count == 3)
        // A pool member's snapshot scratch: a cached 64 MiB qcow2.
        let scratch = try await Self.qemuImg.createSnapshotScratch(in: s.dir, templates: s.cache)
        #expect(try await Self.qemuImg.info(path: scratch).virtualSize == 64 << 20)
    }

    /// A seed from the cache for the same files; other bytes or another
    /// label make another; a bad name is refused before any cache is read.
    @Test func seedsByTheirFiles() async throws {
        let s = try Scratch()
        defer { s.remove() }
        let writer = CloudInitSeed(executable: "/usr/bin/genisoimage")
        let files = [CloudInitFiles.File(path: "meta-data", contents: Array("instance-id: a\n".utf8)),
                     CloudInitFiles.File(path: "user-data", contents: Array("#!/bin/sh\necho one\n".utf8))]
        try await writer.write(files: files, volumeLabel: "cidata", to: s.dir + "/1.iso", templates: s.cache)
        try await writer.write(files: files, volumeLabel: "cidata", to: s.dir + "/2.iso", templates: s.cache)
        #expect(s.bytes("1.iso") == s.bytes("2.iso"))
        #expect(s.entries().count == 1)
        var other = files
        other[1].contents = Array("#!/bin/sh\necho two\n".utf8)
        try await writer.write(files: other, volumeLabel: "cidata", to: s.dir + "/3.iso", templates: s.cache)
        try await writer.write(files: files, volumeLabel: "config-2", to: s.dir + "/4.iso", templates: s.cache)
        #expect(s.entries().count == 3)
        let iso3 = try #require(s.bytes("3.iso"))
        #expect(iso3.firstRange(of: Array("echo two".utf8)) != nil)
        #expect(try #require(s.bytes("4.iso")).firstRange(of: Array("config-2".utf8)) != nil)
        do {
            try await writer.write(files: [.init(path: "../x", contents: [])], volumeLabel: "cidata", to: s.dir + "/5.iso", templates: s.cache)
            Issue.record("a name with .. was written")
        } catch let e as CloudInitSeedError {
            #expect(e.code == .badInput)
        }
        #expect(s.entries().count == 3)
    }
}
