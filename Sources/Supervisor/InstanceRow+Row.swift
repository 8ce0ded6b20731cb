#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ControlAPI
import GRDB
import InstanceContract
import QMP
import Synchronization

extension InstanceRow {
    /// A row read column by column instead of through `Decodable`: every
    /// listing reads every row, and GRDB's Codable path decoded each JSON
    /// column (devices, buses, stderr, labels, options) with a JSONDecoder
    /// of its own, ~7 per row. With 500 instances that was half of the
    /// supervisor's time for `GET /v1/instances` (perf). The lists and
    /// labels are read by `JSONValue`'s parser; options and owner, the same
    /// few texts on nearly every row, are decoded once per text
    /// (`DecodedTexts`); a VM's guest agent by a JSONDecoder. Columns are
    /// written as before, by `Encodable` (`StateStoreTests` holds the two
    /// to one spelling).
    init(row: Row) throws {
        namespace = row["namespace"]
        name = row["name"]
        uid = row["uid"]
        target = row["target"]
        machine = row["machine"]
        restartPolicy = row["restartPolicy"]
        specHash = row["specHash"]
        specDirectory = row["specDirectory"]
        options = try Self.decodedOptions.value(row, "options") ?? ReadOptions()
        serialDevices = try Self.strings(row, "serialDevices")
        canBuses = try Self.strings(row, "canBuses")
        ttlSeconds = row["ttlSeconds"]
        desired = row["desired"]
        let phaseName: String = row["phase"]
        guard let phase = InstancePhase(rawValue: phaseName) else {
            throw DatabaseError(message: "instance \(namespace)/\(name): unknown phase \"\(phaseName)\"")
        }
        self.phase = phase
        reason = (row["reason"] as String?).map(InstanceReason.init(rawValue:))
        message = row["message"]
        ready = row["ready"]
        readyAt = row["readyAt"]
        shimPID = row["shimPID"]
        shimStartTime = row["shimStartTime"]
        qemuPID = row["qemuPID"]
        createdAt = row["createdAt"]
        startedAt = row["startedAt"]
        expiresAt = row["expiresAt"]
        finishedAt = row["finishedAt"]
        exitCode = row["exitCode"]
        signal = row["signal"]
        stderrTail = try Self.strings(row, "stderrTail")
        restarts = row["restarts"]
        backoffStep = row["backoffStep"]
        nextRestartAt = row["nextRestartAt"]
        pool = row["pool"]
        claimedAt = row["claimedAt"]
        claimExpiresAt = row["claimExpiresAt"]
        snapshot = row["snapshot"]
        owner = try Self.decodedOwners.value(row, "owner")
        labels = try Self.stringMap(row, "labels")
        paused = row["paused"]
        pausedAt = row["pausedAt"]
        guestAgent = try (row["guestAgent"] as String?).map { try JSONDecoder().decode(GuestAgentStatus.self, from: Data($0.utf8)) }
    }

    private static let decodedOptions = DecodedTexts<ReadOptions>()
    private static let decodedOwners = DecodedTexts<ProcessOwner>()

    /// What a JSON text decodes to, kept by the text: the text names the
    /// value, so a value once decoded serves every row that has it.
    /// Bounded: a host has few users and few option sets.
    final class DecodedTexts<T: Decodable & Sendable>: Sendable {
        private let known = Mutex<[String: T]>([:])

        /// The column's value; nil when NULL.
        func value(_ row: Row, _ column: String) throws -> T? {
            guard let text: String = row[column] else { return nil }
            if let value = known.withLock({ $0[text] }) { return value }
            let value = try JSONDecoder().decode(T.self, from: Data(text.utf8))
            known.withLock { table in
                if table.count >= 64 { table = [:] }
                table[text] = value
            }
            return value
        }
    }

    private static func parsed(_ row: Row, _ column: String) throws -> JSONValue? {
        guard let text: String = row[column] else { return nil }
        do { return try JSONValue.parse(Array(text.utf8)) } catch {
            throw DatabaseError(message: "instance column \(column): not JSON: \(error)")
        }
    }

    /// A JSON array of strings; NULL reads as empty.
    private static func strings(_ row: Row, _ column: String) throws -> [String] {
        guard let value = try parsed(row, column) else { return [] }
        guard case .array(let items) = value else { throw DatabaseError(message: "instance column \(column): not a JSON array") }
        return try items.map { item in
            guard let s = item.stringValue else { throw DatabaseError(message: "instance column \(column): not a list of strings") }
            return s
        }
    }

    /// A JSON object of strings; NULL reads as empty.
    private static func stringMap(_ row: Row, _ column: String) throws -> [String: String] {
        guard let value = try parsed(row, column) else { return [:] }
        guard case .object(let fields) = value else { throw DatabaseError(message: "instance column \(column): not a JSON object") }
        return try fields.mapValues { item in
            guard let s = item.stringValue else { throw DatabaseError(message: "instance column \(column): not a map of strings") }
            return s
        }
    }
}
