import Foundation
import GRDB
import Testing
@testable import Supervisor

/// Migration v9 on a database the previous schema (v8) made: cluster-scoped
/// resources move into the cluster scope (the empty namespace), one per
/// kind and name (the last applied wins), and nothing else moves.
@Suite struct ClusterScopeMigrationTests {
    @Test func clusterKindsMoveOutOfTheirNamespacesAndTheNewestCopyStays() throws {
        let path = "/tmp/vt-db-\(UInt32.random(in: 0...UInt32.max)).sqlite"
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let rows: [(kind: String, namespace: String, name: String, updatedAt: Double)] = [
            ("VirtualMachineClusterInstancetype", "team-a", "small", 10),
            ("VirtualMachineClusterInstancetype", "team-b", "small", 20),   // applied last: stays
            ("VirtualMachineClusterInstancetype", "team-b", "big", 5),
            ("VirtualMachineClusterPreference", "default", "pref", 1),
            ("MachineClass", "x", "tiny", 3),
            ("MachineClass", "y", "tiny", 3),                               // a tie: the greater namespace stays
            ("VirtualMachineInstancetype", "team-a", "small", 1),           // namespaced: stays where it is
            ("VirtualMachine", "team-a", "vm", 1),
        ]
        do {
            let db = try DatabasePool(path: path)
            try StateStore.migrator.migrate(db, upTo: "v8: guest agents of VMs")
            try db.write { db in
                for r in rows {
                    try db.execute(sql: """
                        INSERT INTO resource (kind, namespace, name, yaml, directory, options, createdAt, updatedAt)
                        VALUES (?, ?, ?, ?, '/d', '{"lenient":false,"allowHostPaths":false,"allowExtraArgs":false}', 0, ?)
                        """, arguments: [r.kind, r.namespace, r.name, "from: \(r.namespace)", r.updatedAt])
                }
            }
        }
        let store = try StateStore(path: path)
        let after = try store.resources(namespace: nil).map { "\($0.kind) \($0.namespace)/\($0.name) \($0.yaml)" }.sorted()
        #expect(after == [
            "MachineClass /tiny from: y",
            "VirtualMachine team-a/vm from: team-a",
            "VirtualMachineClusterInstancetype /big from: team-b",
            "VirtualMachineClusterInstancetype /small from: team-b",
            "VirtualMachineClusterPreference /pref from: default",
            "VirtualMachineInstancetype team-a/small from: team-a",
        ])
        // The kinds the migration names are the registry's cluster-scoped ones.
        #expect(Set(StateStore.clusterScopedKinds) == Supervisor.clusterKinds)
        // Opening again migrates nothing.
        let again = try StateStore(path: path)
        #expect(try again.resources(namespace: nil).count == after.count)
    }
}
