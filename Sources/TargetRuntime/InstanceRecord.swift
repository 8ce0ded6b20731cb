#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import InstanceContract

extension InstanceRecord {
    public func write() {
        guard let data = try? encoded() else { return }
        FileDescriptors.replaceFile(layout.recordFile, with: data)
    }

    /// Whether the QEMU it names is still that process.
    public var qemuAlive: Bool { Processes.startTime(of: qemuPID) == qemuStartTime }

}

/// Finds instances by name across every `vtarget run` of this user.
public enum InstanceLocator {
    public static func all(environment: [String: String]) -> [InstanceRecord] {
        liveRecords(environment: environment, file: { InstanceLayout(directory: $0).recordFile }, decode: InstanceRecord.decode) { $0.ownerPID }
    }

    /// Every `<base>/run-*/*/<file>` (runs) and `<base>/ns-*/*/<file>`
    /// (the supervisor's instances) whose owning run is still alive.
    static func liveRecords<R>(environment: [String: String], file: (String) -> String, decode: (Data) -> R?, owner: (R) -> Int32) -> [R] {
        let base = RuntimeDirectory.base(environment: environment)
        var out: [R] = []
        for run in ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).sorted()
        where run.hasPrefix(InstanceLayout.runPrefix) || run.hasPrefix(InstanceLayout.namespacePrefix) {
            for dir in (try? FileManager.default.contentsOfDirectory(atPath: base + "/" + run)) ?? [] {
                guard let data = FileManager.default.contents(atPath: file("\(base)/\(run)/\(dir)")),
                      let r = decode(data),
                      Processes.exist(owner(r)) else { continue }
                out.append(r)
            }
        }
        return out
    }

    /// `run`: the pid of the owning `vtarget run` (or supervisor shim), for two
    /// runs of one file, whose instances share name and namespace.
    public static func find(_ name: String, namespace: String?, run: Int32? = nil, environment: [String: String]) throws(RuntimeError) -> InstanceRecord {
        let all = all(environment: environment)
        let named = all.filter { $0.name == name && (namespace == nil || $0.namespace == namespace) }
        let hits = named.filter { run == nil || $0.ownerPID == run }
        if hits.count == 1 { return hits[0] }
        if hits.isEmpty {
            if let run, !named.isEmpty {
                throw RuntimeError("no run \(run) has an instance \"\(name)\"; give --run with one of: " + choices(named), code: .notFound)
            }
            let names = all.map { $0.namespace == "default" ? $0.name : "\($0.namespace)/\($0.name)" }
            throw RuntimeError("no running instance \"\(name)\"" + (names.isEmpty ? " (none is running: start one with vtarget run)" : "; running: " + names.joined(separator: ", ")), code: .notFound)
        }
        let namespaces = Set(hits.map(\.namespace))
        let how = namespaces.count == hits.count ? "give -n NAMESPACE or --run PID" : "give --run PID"
        throw RuntimeError("\(hits.count) running instances are called \"\(name)\"; \(how), one of: " + choices(hits))
    }

    /// Each candidate as `--run PID` would pick it, with what tells them apart.
    private static func choices(_ records: [InstanceRecord]) -> String {
        records.sorted { $0.ownerPID < $1.ownerPID }
            .map { "\($0.ownerPID) (namespace \($0.namespace), \($0.directory))" }
            .joined(separator: ", ")
    }
}

/// What a bus host publishes in its directory's `bus.json`, for targets
/// joining and for `vtarget can dump|send|fault`.
public struct BusRecord: Codable, Sendable {
    public var name: String
    public var namespace: String
    public var ownerPID: Int32
    public var port: Int
    public var socket: String
    public var directory: String
    /// Where the bus listens, when another machine serves it (`VTARGET_REMOTE_CAN`); nil is 127.0.0.1.
    public var host: String? = nil

    public func write() {
        guard let data = try? JSONEncoder().encode(self) else { return }
        FileDescriptors.replaceFile(directory + "/bus.json", with: data)
    }

    /// The record in `directory`, when its host is alive.
    public static func live(in directory: String) -> BusRecord? {
        guard let data = FileManager.default.contents(atPath: directory + "/bus.json"),
              let r = try? JSONDecoder().decode(BusRecord.self, from: data),
              Processes.exist(r.ownerPID) else { return nil }
        return r
    }

    public static func find(_ name: String, namespace: String, environment: [String: String]) throws(RuntimeError) -> BusRecord {
        if let r = live(in: CANBusHost.directory(bus: name, namespace: namespace, environment: environment)) { return r }
        let base = RuntimeDirectory.base(environment: environment)
        let running = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).sorted()
            .filter { $0.hasPrefix("bus-") }.compactMap { live(in: base + "/" + $0) }
            .map { $0.namespace == "default" ? $0.name : "\($0.namespace)/\($0.name)" }
        throw RuntimeError("no CAN bus \"\(name)\" is running" + (namespace == "default" ? "" : " in namespace \(namespace)")
                           + (running.isEmpty ? "" : "; running: " + running.joined(separator: ", ")), code: .notFound)
    }
}
