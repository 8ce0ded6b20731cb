import Foundation
import ControlAPI
import GRDB
import InstanceContract
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

    /// `InstanceRow.init(row:)` reads what its `Encodable` side writes:
    /// every column set (JSON lists, labels with quotes and non-ASCII,
    /// owner, guest agent, a reason of a newer vtarget), and every optional
    /// one NULL.
    @Test func anInstanceRowReadsBackAsItWasWritten() throws {
        let path = temporaryPath()
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let store = try StateStore(path: path)
        let full = InstanceRow(
            namespace: "ns", name: "full", uid: "u-1", target: "QemuVirtualTarget/t", machine: "q35", restartPolicy: "Always",
            specHash: "abc", specDirectory: "/d ir", options: ReadOptions(lenient: true, allowHostPaths: true, allowExtraArgs: false),
            serialDevices: ["console", "uart \"1\""], canBuses: ["vehicle"], ttlSeconds: 90.5, desired: "running", phase: .running,
            reason: InstanceReason("SomethingNewer"), message: "line1\nline2", ready: true, readyAt: 3.25, shimPID: 41, shimStartTime: 1_234_567,
            qemuPID: 42, createdAt: 1.5, startedAt: 2.5, expiresAt: 100.0, finishedAt: nil, exitCode: 3, signal: 9,
            stderrTail: ["qemu: warning", "été ✓", ""], restarts: 2, backoffStep: 1, nextRestartAt: 7.0, pool: "p", claimedAt: 8.0,
            claimExpiresAt: 9.0, snapshot: true, owner: ProcessOwner(uid: 1000, gid: 1000, groups: [27, 100]),
            labels: ["app": "ci", "quote": "a\"b", "ünï": "✓"], paused: true, pausedAt: 10.0,
            guestAgent: GuestAgentStatus(connected: true, since: 11.0, hostname: "bb", osName: "Debian",
                                         interfaces: [GuestInterface(name: "eth0", mac: "52:54:00:12:34:56", ipAddresses: ["10.0.2.15"])]))
        var bare = full
        bare.name = "bare"
        (bare.ttlSeconds, bare.reason, bare.message, bare.readyAt, bare.shimPID, bare.shimStartTime) = (nil, nil, nil, nil, nil, nil)
        (bare.qemuPID, bare.startedAt, bare.expiresAt, bare.exitCode, bare.signal, bare.nextRestartAt) = (nil, nil, nil, nil, nil, nil)
        (bare.pool, bare.claimedAt, bare.claimExpiresAt, bare.owner, bare.pausedAt, bare.guestAgent) = (nil, nil, nil, nil, nil, nil)
        (bare.serialDevices, bare.canBuses, bare.stderrTail, bare.labels, bare.phase) = ([], [], [], [:], .failed)
        try store.write { db in
            try full.insert(db)
            try bare.insert(db)
        }
        #expect(try store.instance("ns", "full") == full)
        #expect(try store.instance("ns", "bare") == bare)
        #expect(try store.instances(namespace: "ns") == [bare, full])
    }
}
