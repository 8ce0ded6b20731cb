import DiskImages
import Foundation
import Synchronization
import TargetRuntime
import Testing

/// Temp state directories and disks made by the real qemu-img.
struct ImageScratch {
    let dir = "/tmp/vt-images-\(UInt32.random(in: 0...UInt32.max))"
    var state: String { dir + "/state" }
    var images: String { state + "/images" }

    init() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    func store(users: @escaping @Sendable (OCIDigest) -> [String] = { _ in [] }) throws -> ImageStore {
        ImageStore(stateDirectory: state, qemuImg: try QemuImg(environment: ProcessInfo.processInfo.environment), users: users)
    }

    /// A qcow2 (or raw) of `size` bytes with `fill` written at its start, so disks differ.
    func disk(_ name: String, format: QemuImg.Format = .qcow2, size: UInt64 = 1 << 20, fill: String = "") async throws -> String {
        let path = dir + "/" + name
        try await QemuImg(environment: ProcessInfo.processInfo.environment).create(path: path, format: format, size: size)
        if !fill.isEmpty {
            let r = try shell("qemu-io -f \(format.rawValue) -c 'write -P 0x\(fill) 0 4k' \(path) >/dev/null", runtime: dir)
            #expect(r.code == 0, "\(r.stderr)")
        }
        return path
    }

    func blobs() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: images + "/blobs/sha256")) ?? []).sorted() }
    func temps() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: images + "/tmp")) ?? [] }

    /// Nothing half-done anywhere: no temp files, every blob in the index and back.
    func expectConsistent(_ store: ImageStore, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(temps().isEmpty, "temp files left: \(temps())", sourceLocation: sourceLocation)
        let listed = Set(try store.list().map(\.image.digest.hex))
        #expect(Set(blobs()) == listed, "blobs \(blobs()) vs index \(listed)", sourceLocation: sourceLocation)
    }
}

func sha256(ofFile path: String) throws -> String {
    let r = try shell("sha256sum \(path)", runtime: "/tmp")
    return String(r.stdout.prefix(64))
}

@Suite struct ImageStoreTests {
    typealias Ref = ImageStore.Reference

    @Test func importQcow2AndRaw() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let store = try s.store()
        let q = try await s.disk("a.qcow2", size: 8 << 20)
        let r = try await s.disk("b.raw", format: .raw, size: 2 << 20)
        let qi = try await store.importFile(q, as: Ref.parse("cirros:1"))
        let ri = try await store.importFile(r, as: Ref.parse("rawdisk"))
        #expect(qi.format == .qcow2 && qi.virtualSize == 8 << 20)
        #expect(ri.format == .raw && ri.virtualSize == 2 << 20 && ri.fileSize == 2 << 20)
        #expect(qi.digest.hex == (try sha256(ofFile: q)), "content-addressed by the file's own sha256")
        #expect(qi.source == .imported(q))
        let resolved = try store.resolve("cirros:1")
        #expect(resolved == .init(digest: qi.digest, path: s.images + "/blobs/sha256/" + qi.digest.hex, format: .qcow2, virtualSize: 8 << 20))
        #expect(try store.resolve("rawdisk:latest").digest == ri.digest)
        #expect(try store.resolve("rawdisk").digest == ri.digest)
        #expect(try store.resolve(qi.digest.description).digest == qi.digest)
        #expect(try store.resolve("cirros@" + qi.digest.description).digest == qi.digest, "a name with its image's digest")
        var st = stat()
        let statted = stat(resolved.path, &st)
        #expect(statted == 0 && st.st_mode & 0o777 == 0o444, "blobs are read-only")
        #expect(try store.list().map(\.reference) == ["cirros:1", "rawdisk:latest"])
        // The same content under another name: one blob.
        let again = try await store.importFile(q, as: Ref.parse("cirros:other"))
        #expect(again.digest == qi.digest && again.created == qi.created)
        #expect(s.blobs().count == 2)
        #expect(try store.inspect("cirros:1").refs == ["cirros:1", "cirros:other"])
        try s.expectConsistent(store)
        for missing in ["cirros:2", "nothere", "cirros@sha256:" + String(repeating: "0", count: 64), "sha256:" + String(repeating: "1", count: 64)] {
            do {
                _ = try store.resolve(missing)
                Issue.record("resolved \(missing)")
            } catch {
                #expect(error.code == .notFound && error.message.contains("vtarget image ls"), "\(error)")
            }
        }
    }

    /// A disk compressed with gzip or xz is stored as the disk itself: the
    /// same digest as the plain file, its format and size qemu-img's. A
    /// compressed stream cut short is refused, leaving nothing behind.
    @Test func importsCompressedDisks() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let store = try s.store()
        let q = try await s.disk("c.qcow2", size: 8 << 20, fill: "5a")
        let plain = try await store.importFile(q, as: Ref.parse("plain:1"))
        for (tool, suffix) in [("gzip", "gz"), ("xz", "xz")] {
            #expect(try shell("\(tool) -k -c \(q) > \(q).\(suffix)", runtime: s.dir).code == 0)
            let packed = try await store.importFile(q + "." + suffix, as: Ref.parse("packed:\(suffix)"))
            #expect(packed.digest == plain.digest && packed.format == .qcow2 && packed.virtualSize == 8 << 20, "\(suffix): \(packed)")
            // Cut short: the tool's complaint, no blob, no temp file.
            #expect(try shell("head -c 300 \(q).\(suffix) > \(s.dir)/cut.\(suffix)", runtime: s.dir).code == 0)
            do {
                _ = try await store.importFile(s.dir + "/cut." + suffix, as: Ref.parse("cut"))
                Issue.record("imported a cut \(suffix) file")
            } catch {
                #expect(error.code == .unsupportedImage && error.message.contains("-compressed, and /usr/bin/\(tool) -dc could not decompress it"), "\(error)")
            }
        }
        #expect(s.blobs().count == 1)
        #expect(try store.list().map(\.reference) == ["packed:gz", "packed:xz", "plain:1"])
        try s.expectConsistent(store)
    }

    @Test func refusesWhatIsNoSelfContainedDisk() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let store = try s.store()
        let base = try await s.disk("base.qcow2")
        let top = s.dir + "/top.qcow2"
        try await QemuImg(environment: ProcessInfo.processInfo.environment).create(path: top, format: .qcow2, size: nil, backing: .init(path: base, format: .qcow2))
        let external = s.dir + "/external.qcow2"
        #expect(try shell("qemu-img create -q -f qcow2 -o data_file=\(s.dir)/external.data \(external) 1M", runtime: s.dir).code == 0)
        let text = s.dir + "/notes.txt"
        try "not a disk image\n".write(toFile: text, atomically: true, encoding: .utf8)
        let empty = s.dir + "/empty.img"
        FileManager.default.createFile(atPath: empty, contents: Data())
        let vmdk = s.dir + "/x.vmdk"
        #expect(try shell("qemu-img create -q -f vmdk \(vmdk) 1M", runtime: s.dir).code == 0)
        for (file, code, words) in [(top, ImageStoreError.Code.unsupportedImage, "backing file (\(base))"),
                                    (external, .unsupportedImage, "external data file (\(s.dir)/external.data)"),
                                    (text, .unsupportedImage, "not a disk image"),
                                    (empty, .unsupportedImage, "0 bytes"),
                                    (vmdk, .unsupportedImage, "format vmdk; the store takes qcow2 or raw"),
                                    (s.dir + "/missing.qcow2", .badReference, "No such file"),
                                    // A directory is a file tree now (ImageTreeTests); a device is nothing.
                                    ("/dev/null", .badReference, "not a regular file")] {
            do {
                _ = try await store.importFile(file, as: Ref.parse("bad"))
                Issue.record("imported \(file)")
            } catch {
                #expect(error.code == code, "\(file): \(error)")
                #expect(error.message.contains(words), "\(error)")
            }
        }
        #expect(s.blobs().isEmpty && s.temps().isEmpty)
        #expect(try store.list().isEmpty)
    }

    /// Many imports of one file at once, and of different files under one
    /// tag: one blob per content, the last writer's tag, nothing torn.
    @Test func concurrentImports() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let store = try s.store()
        let a = try await s.disk("a.qcow2", fill: "aa")
        let b = try await s.disk("b.qcow2", fill: "bb")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask { _ = try await store.importFile(a, as: Ref.parse("same:\(i)")) }
                group.addTask { _ = try await store.importFile(i % 2 == 0 ? a : b, as: Ref.parse("contended")) }
            }
            try await group.waitForAll()
        }
        #expect(Set(try store.list().compactMap(\.reference)) == Set((0..<8).map { "same:\($0)" } + ["contended:latest"]))
        // b's only tag is "contended": when an import of a took it last, b's
        // blob went with it (a tag moved off an image deletes it).
        let contendedIsA = try store.inspect("contended").image.digest == store.inspect("same:0").image.digest
        #expect(s.blobs().count == (contendedIsA ? 1 : 2))
        try s.expectConsistent(store)
    }

    /// Imports and removals racing on one name: whatever the order, every
    /// reference has its blob and no blob is left without a reference.
    @Test func importWhileRemove() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let store = try s.store()
        let a = try await s.disk("a.qcow2", fill: "aa")
        let b = try await s.disk("b.qcow2", fill: "bb")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<10 {
                group.addTask { _ = try await store.importFile(i % 2 == 0 ? a : b, as: Ref.parse("race")) }
                group.addTask {
                    do { _ = try store.remove(["race"]) } catch let e as ImageStoreError where e.code == .notFound {}
                }
            }
            try await group.waitForAll()
        }
        try s.expectConsistent(store)
        for e in try store.list() { #expect(FileManager.default.fileExists(atPath: store.path(for: e.image.digest))) }
    }

    @Test func removeSemantics() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let inUse = UsersBox()
        let store = try s.store(users: { d in inUse.users(d) })
        let a = try await s.disk("a.qcow2", fill: "aa")
        let b = try await s.disk("b.qcow2", fill: "bb")
        let ia = try await store.importFile(a, as: Ref.parse("a:1"))
        _ = try await store.importFile(a, as: Ref.parse("a:2"))
        let ib = try await store.importFile(b, as: Ref.parse("b"))
        // All or nothing: one missing reference removes none.
        do {
            _ = try store.remove(["a:1", "nothere:1"])
            Issue.record("removed with a missing reference")
        } catch {
            #expect(error.code == .notFound && error.message.contains("nothere:1") && error.message.contains("vtarget image ls"), "\(error)")
        }
        #expect(try store.list().count == 3)
        // Not the last reference: the blob stays.
        #expect(try store.remove(["a:1"]) == .init(references: ["a:1"], deleted: []))
        #expect(s.blobs().contains(ia.digest.hex))
        // The last one, while a VM uses the image: refused.
        inUse.set([ia.digest: ["vm/default/web"]])
        do {
            _ = try store.remove(["a:2"])
            Issue.record("removed an image in use")
        } catch {
            #expect(error.code == .inUse && error.message.contains("vm/default/web"), "\(error)")
        }
        inUse.set([:])
        #expect(try store.remove(["a:2"]) == .init(references: ["a:2"], deleted: [ia.digest]))
        #expect(!s.blobs().contains(ia.digest.hex), "the last reference takes the blob with it")
        // By bare digest: every reference to it.
        _ = try await store.importFile(b, as: Ref.parse("b:two"))
        #expect(try store.remove([ib.digest.description]) == .init(references: ["b:latest", "b:two"], deleted: [ib.digest]))
        #expect(s.blobs().isEmpty)
        try s.expectConsistent(store)
        // Retagging away from an image collects it.
        _ = try await store.importFile(a, as: Ref.parse("t"))
        _ = try await store.importFile(b, as: Ref.parse("t"))
        #expect(s.blobs() == [ib.digest.hex])
    }

    /// A temp file of a killed import is invisible, and the next write removes it.
    @Test func staleTempsOfDeadProcessesGo() async throws {
        let s = try ImageScratch()
        defer { s.remove() }
        let store = try s.store()
        let a = try await s.disk("a.qcow2")
        _ = try await store.importFile(a, as: Ref.parse("a"))
        let stale = s.images + "/tmp/999999999-1"
        FileManager.default.createFile(atPath: stale, contents: Data("half".utf8))
        try FileManager.default.createDirectory(atPath: s.images + "/tmp/999999999-2.pull", withIntermediateDirectories: false)
        #expect(try store.list().count == 1)
        _ = try store.remove(["a"])
        #expect(s.temps().isEmpty)
    }
}

/// What the VM side will answer: which overlays use an image.
final class UsersBox: Sendable {
    private let map = Mutex<[OCIDigest: [String]]>([:])
    func set(_ m: [OCIDigest: [String]]) { map.withLock { $0 = m } }
    func users(_ d: OCIDigest) -> [String] { map.withLock { $0[d] ?? [] } }
}
