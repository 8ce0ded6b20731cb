import Foundation
import Testing
@testable import Supervisor

/// Where recorded instances' bundles are kept: the newest `kept` per
/// instance, what a killed shim left cleared, names from requests confined.
@Suite struct BundleShelfTests {
    static func scratch() -> String {
        let d = "/tmp/vt-shelf-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// A bundle file written `age` seconds ago.
    static func put(_ path: String, age: Double) throws {
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
        let t = Date().addingTimeInterval(-age)
        try FileManager.default.setAttributes([.modificationDate: t], ofItemAtPath: path)
    }

    @Test func pruneKeepsTheNewest() throws {
        let root = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "/default/cks"
        try BundleShelf.prepare(dir)
        for i in 0..<7 { try Self.put(dir + "/run-\(i).vtb", age: Double(100 - i)) }
        try Self.put(dir + "/notes.txt", age: 500)
        let gone = BundleShelf.prune(dir)
        #expect(gone == [dir + "/run-0.vtb", dir + "/run-1.vtb"])
        #expect(BundleShelf.list(dir, namespace: "default", name: "cks").map(\.path) == (2..<7).map { dir + "/run-\($0).vtb" })
        #expect(FileManager.default.fileExists(atPath: dir + "/notes.txt"), "only bundles are pruned")
        #expect(BundleShelf.prune(dir).isEmpty, "five are kept")
        #expect(BundleShelf.prune(dir, keeping: 0).count == 5)
    }

    @Test func prepareClearsWhatAKilledShimLeft() throws {
        let root = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "/ns/a/b"
        try BundleShelf.prepare(dir)
        var st = stat()
        #expect(stat(dir, &st) == 0 && st.st_mode & 0o777 == 0o700)
        try Self.put(dir + "/kept.vtb", age: 1)
        try Self.put(dir + "/half.vtb.partial", age: 1)
        try FileManager.default.createDirectory(atPath: BundleShelf.stagingParent(dir) + "/vtarget-record-x/qemu", withIntermediateDirectories: true)
        try BundleShelf.prepare(dir)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == [".staging", "kept.vtb"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: BundleShelf.stagingParent(dir)).isEmpty)
        #expect(BundleShelf.list(dir, namespace: "ns", name: "a").map(\.path) == [dir + "/kept.vtb"])
        // After a shim's end, the supervisor clears the same, staging directory included.
        try Self.put(dir + "/again.vtb.partial", age: 1)
        BundleShelf.clearLeftovers(dir)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["kept.vtb"])
        BundleShelf.clearLeftovers(root + "/never-made")
    }

    @Test func allWalksNamespacesAndNamesAndRefusesPaths() throws {
        let root = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (ns, name, age) in [("default", "a", 3.0), ("default", "b", 2.0), ("team", "a", 1.0)] {
            try BundleShelf.prepare(root + "/\(ns)/\(name)")
            try Self.put(root + "/\(ns)/\(name)/r.vtb", age: age)
        }
        try Self.put(root + "/outside.vtb", age: 1)
        func keys(_ namespace: String?, _ name: String?) -> [String] {
            BundleShelf.all(root: root, namespace: namespace, name: name).map { "\($0.namespace)/\($0.name)" }
        }
        #expect(keys(nil, nil) == ["default/a", "default/b", "team/a"])
        #expect(keys("default", nil) == ["default/a", "default/b"])
        #expect(keys(nil, "a") == ["default/a", "team/a"])
        #expect(BundleShelf.all(root: root, namespace: "nosuch", name: nil).isEmpty)
        for bad in ["..", "../default", "a/b", ".staging", ""] {
            #expect(BundleShelf.all(root: root + "/default", namespace: bad, name: nil).isEmpty, "\(bad)")
            #expect(BundleShelf.all(root: root, namespace: "default", name: bad).isEmpty, "\(bad)")
        }
        #expect(BundleShelf.all(root: root + "/nonexistent", namespace: nil, name: nil).isEmpty)
    }
}
