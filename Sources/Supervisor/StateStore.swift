import ControlAPI
import InstanceContract
import GRDB
import ResourceKit

/// An applied resource, as the CLI validated it.
struct ResourceRow: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    static let databaseTableName = "resource"
    var kind: String
    var namespace: String
    var name: String
    var yaml: String
    var directory: String
    var options: ReadOptions
    var createdAt: Double
    var updatedAt: Double
    /// Who applied it (its sidecars run as that user).
    var owner: ProcessOwner?
}

/// One instance: what it should be (desired, specHash) and what it is.
/// Written by `Encodable`, read by `init(row:)` (`InstanceRow+Row`), not
/// `Decodable`, so GRDB's slower Codable reading cannot come back unseen.
struct InstanceRow: Encodable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    static let databaseTableName = "instance"
    var namespace: String
    var name: String
    var uid: String
    var target: String
    var machine: String
    var restartPolicy: String
    var specHash: String
    var specDirectory: String
    var options: ReadOptions
    var serialDevices: [String]
    /// The CAN buses its devices are on (endpoints `can.<bus>`).
    var canBuses: [String] = []
    var ttlSeconds: Double?
    /// "running" or "stopped".
    var desired: String
    var phase: InstancePhase
    var reason: InstanceReason?
    var message: String?
    var ready: Bool
    var readyAt: Double?
    /// The supervised `vtarget run` (the shim) and its start time in clock
    /// ticks: together they name that process and no later one.
    var shimPID: Int32?
    var shimStartTime: Int64?
    var qemuPID: Int32?
    var createdAt: Double
    var startedAt: Double?
    var expiresAt: Double?
    var finishedAt: Double?
    var exitCode: Int32?
    var signal: Int32?
    var stderrTail: [String]
    var restarts: Int
    var backoffStep: Int
    var nextRestartAt: Double?
    /// Pool members: their pool, and while claimed, since when and until when.
    var pool: String?
    var claimedAt: Double?
    var claimExpiresAt: Double?
    /// The shim has taken the `vt-ready` snapshot.
    var snapshot: Bool = false
    /// Who its sidecars run as: the user that applied its resource.
    var owner: ProcessOwner?
    /// metadata.labels of the resource it is an instance of (its
    /// VirtualTargetInstance, else its target; a pool's members carry the pool's).
    var labels: [String: String] = [:]
    /// The guest is paused (the shim's status says so): phase Running,
    /// status `Paused`, and since when.
    var paused: Bool = false
    var pausedAt: Double?
    /// A VM's guest agent, as its shim last reported it.
    var guestAgent: GuestAgentStatus?

    var key: String { namespace + "/" + name }
    var isActive: Bool { phase.isActive }
}

/// The spec an instance's shim runs (instance, target and ConfigMaps, firmware
/// included), apart from the instance row: status changes rewrite the row
/// often, and listings read every row, neither should carry the firmware.
struct InstanceSpecRow: Codable, FetchableRecord, PersistableRecord, Sendable {
    static let databaseTableName = "instance_spec"
    var namespace: String
    var name: String
    var spec: String
}

struct EventRow: Codable, FetchableRecord, MutablePersistableRecord, Sendable {
    static let databaseTableName = "event"
    var id: Int64?
    var time: Double
    var namespace: String
    var kind: String
    var name: String
    var type: String
    var reason: String
    var message: String

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    var info: EventInfo {
        EventInfo(id: id ?? 0, time: time, namespace: namespace, kind: kind, name: name, type: type, reason: reason, message: message)
    }
}

/// The supervisor's state in SQLite (WAL). Every change of state is one
/// transaction, so a crash leaves the previous or the next state, never a mix.
struct StateStore: Sendable {
    let db: DatabasePool

    init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(5)
        db = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(db)
    }

    /// Migrations from the first release on: add, never edit, a migration.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.create(table: "resource") { t in
                t.column("kind", .text).notNull()
                t.column("namespace", .text).notNull()
                t.column("name", .text).notNull()
                t.column("yaml", .text).notNull()
                t.column("directory", .text).notNull()
                t.column("options", .text).notNull()
                t.column("createdAt", .double).notNull()
                t.column("updatedAt", .double).notNull()
                t.primaryKey(["kind", "namespace", "name"])
            }
            try db.create(table: "instance") { t in
                t.column("namespace", .text).notNull()
                t.column("name", .text).notNull()
                t.column("uid", .text).notNull()
                t.column("target", .text).notNull()
                t.column("machine", .text).notNull()
                t.column("restartPolicy", .text).notNull()
                t.column("specHash", .text).notNull()
                t.column("spec", .text).notNull()
                t.column("specDirectory", .text).notNull()
                t.column("options", .text).notNull()
                t.column("serialDevices", .text).notNull()
                t.column("ttlSeconds", .double)
                t.column("desired", .text).notNull()
                t.column("phase", .text).notNull()
                t.column("reason", .text)
                t.column("message", .text)
                t.column("ready", .boolean).notNull()
                t.column("readyAt", .double)
                t.column("shimPID", .integer)
                t.column("shimStartTime", .integer)
                t.column("qemuPID", .integer)
                t.column("createdAt", .double).notNull()
                t.column("startedAt", .double)
                t.column("expiresAt", .double)
                t.column("finishedAt", .double)
                t.column("exitCode", .integer)
                t.column("signal", .integer)
                t.column("stderrTail", .text).notNull()
                t.column("restarts", .integer).notNull()
                t.column("backoffStep", .integer).notNull()
                t.column("nextRestartAt", .double)
                t.primaryKey(["namespace", "name"])
            }
            try db.create(table: "event") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("time", .double).notNull()
                t.column("namespace", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("name", .text).notNull()
                t.column("type", .text).notNull()
                t.column("reason", .text).notNull()
                t.column("message", .text).notNull()
            }
            try db.create(index: "event_object", on: "event", columns: ["namespace", "name"])
        }
        m.registerMigration("v2: pools") { db in
            try db.alter(table: "instance") { t in
                t.add(column: "pool", .text)
                t.add(column: "claimedAt", .double)
                t.add(column: "claimExpiresAt", .double)
                t.add(column: "snapshot", .boolean).notNull().defaults(to: false)
            }
        }
        m.registerMigration("v3: specs apart from instances") { db in
            try db.create(table: "instance_spec") { t in
                t.column("namespace", .text).notNull()
                t.column("name", .text).notNull()
                t.column("spec", .text).notNull()
                t.primaryKey(["namespace", "name"])
            }
            try db.execute(sql: "INSERT INTO instance_spec (namespace, name, spec) SELECT namespace, name, spec FROM instance")
            try db.alter(table: "instance") { t in t.drop(column: "spec") }
        }
        m.registerMigration("v4: CAN buses of instances") { db in
            try db.alter(table: "instance") { t in t.add(column: "canBuses", .text).notNull().defaults(to: "[]") }
        }
        m.registerMigration("v5: labels of instances") { db in
            try db.alter(table: "instance") { t in t.add(column: "labels", .text).notNull().defaults(to: "{}") }
        }
        m.registerMigration("v6: owners of resources and instances") { db in
            try db.alter(table: "resource") { t in t.add(column: "owner", .text) }
            try db.alter(table: "instance") { t in t.add(column: "owner", .text) }
        }
        m.registerMigration("v7: paused instances") { db in
            try db.alter(table: "instance") { t in
                t.add(column: "paused", .boolean).notNull().defaults(to: false)
                t.add(column: "pausedAt", .double)
            }
        }
        m.registerMigration("v8: guest agents of VMs") { db in
            try db.alter(table: "instance") { t in t.add(column: "guestAgent", .text) }
        }
        m.registerMigration("v9: cluster-scoped resources in no namespace") { db in
            // Before, a cluster instancetype, preference or MachineClass was
            // kept under the namespace it was applied in, so one name could be
            // there twice: the last applied is the one that stays.
            let kinds = clusterScopedKinds.map { "'\($0)'" }.joined(separator: ", ")
            try db.execute(sql: """
                DELETE FROM resource AS r WHERE kind IN (\(kinds)) AND EXISTS (
                  SELECT 1 FROM resource AS o WHERE o.kind = r.kind AND o.name = r.name AND o.namespace != r.namespace
                  AND (o.updatedAt > r.updatedAt OR (o.updatedAt = r.updatedAt AND o.namespace > r.namespace)))
                """)
            try db.execute(sql: "UPDATE resource SET namespace = ? WHERE kind IN (\(kinds))", arguments: [KindRegistry.clusterScope])
        }
        return m
    }

    /// The kinds migration v9 moved into the cluster scope, spelled out: a
    /// migration must not change when the registry later gains a kind.
    static let clusterScopedKinds = ["VirtualMachineClusterInstancetype", "VirtualMachineClusterPreference", "MachineClass"]

    func write<T>(_ body: (Database) throws -> T) throws -> T { try db.write(body) }

    /// Moves everything from the WAL into the database file and empties the
    /// WAL: after a clean stop, state.sqlite alone holds the state, so a lost
    /// or truncated -wal file costs nothing.
    func checkpoint() throws {
        try db.writeWithoutTransaction { try $0.checkpoint(.truncate) }
    }
    func read<T>(_ body: (Database) throws -> T) throws -> T { try db.read(body) }

    func resources(namespace: String?, kind: String? = nil) throws -> [ResourceRow] {
        try read { db in
            var q = ResourceRow.all()
            if let namespace { q = q.filter(Column("namespace") == namespace) }
            if let kind { q = q.filter(Column("kind") == kind) }
            return try q.order(Column("namespace"), Column("kind"), Column("name")).fetchAll(db)
        }
    }

    func instances(namespace: String? = nil) throws -> [InstanceRow] {
        try read { db in
            var q = InstanceRow.all()
            if let namespace { q = q.filter(Column("namespace") == namespace) }
            return try q.order(Column("namespace"), Column("name")).fetchAll(db)
        }
    }

    func spec(_ namespace: String, _ name: String) throws -> String? {
        try read { try InstanceSpecRow.fetchOne($0, key: ["namespace": namespace, "name": name])?.spec }
    }

    func instance(_ namespace: String, _ name: String) throws -> InstanceRow? {
        try read { try InstanceRow.fetchOne($0, key: ["namespace": namespace, "name": name]) }
    }

    func events(namespace: String?, name: String? = nil, after id: Int64 = 0, limit: Int = 1000) throws -> [EventRow] {
        try read { db in
            var q = EventRow.filter(Column("id") > id)
            if let namespace { q = q.filter(Column("namespace") == namespace) }
            if let name { q = q.filter(Column("name") == name) }
            let newest = try q.order(Column("id").desc).limit(limit).fetchAll(db)
            return newest.reversed()
        }
    }
}
