import Foundation
import GRDB
import Testing
@testable import Supervisor

/// The state database on real SQLite: migrations carry data forward.
@Suite struct StateStoreTests {
    func temporaryPath() -> String { "/tmp/vt-db-\(UInt32.random(in: 0...UInt32.max)).sqlite" }

    @Test func migrationsFromTheFirstSchemaKeepEveryInstanceAndItsSpec() throws {
        let path = temporaryPath()
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        // A database as the first release left it, with one instance.
        do {
            let db = try DatabasePool(path: path)
            try StateStore.migrator.migrate(db, upTo: "v1")
            try db.write { db in
                try db.execute(sql: """
                    INSERT INTO instance (namespace, name, uid, target, machine, restartPolicy, specHash, spec, specDirectory,
                      options, serialDevices, desired, phase, ready, createdAt, stderrTail, restarts, backoffStep)
                    VALUES ('default', 'a', 'u1', 't', 'lm3s6965evb', 'Never', 'h', 'kind: QemuVirtualTarget', '/d',
                      '{"lenient":false,"allowHostPaths":false,"allowExtraArgs":false}', '["uart0"]', 'running', 'Running', 1, 1.0, '[]', 0, 0)
                    """)
            }
        }
        let store = try StateStore(path: path)
        let row = try #require(try store.instance("default", "a"))
        #expect(row.phase == .running && row.serialDevices == ["uart0"] && row.pool == nil && row.snapshot == false)
        #expect(try store.spec("default", "a") == "kind: QemuVirtualTarget")
        let columns = try store.read { try $0.columns(in: "instance").map(\.name) }
        #expect(!columns.contains("spec") && columns.contains("claimedAt"))
        // Opening again migrates nothing and changes nothing.
        let again = try StateStore(path: path)
        #expect(try again.instance("default", "a") == row)
    }

    @Test func eventsComeOldestFirstAfterAnID() throws {
        let path = temporaryPath()
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let store = try StateStore(path: path)
        try store.write { db in
            for i in 0..<5 {
                var e = EventRow(id: nil, time: Double(i), namespace: i % 2 == 0 ? "a" : "b", kind: "VirtualTargetInstance",
                                 name: "x", type: "Normal", reason: "R\(i)", message: "")
                try e.insert(db)
            }
        }
        #expect(try store.events(namespace: nil).map(\.reason) == ["R0", "R1", "R2", "R3", "R4"])
        #expect(try store.events(namespace: "a", after: 1).map(\.reason) == ["R2", "R4"])
        #expect(try store.events(namespace: nil, limit: 2).map(\.reason) == ["R3", "R4"])
    }
}
