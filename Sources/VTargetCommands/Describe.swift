import ArgumentParser
import ControlAPI
import ResourceKit

struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe", abstract: "An instance's status, endpoints and recent events.")

    @Argument(help: "instance") var kind: String
    @Argument(help: "The instance's name.") var name: String
    @Option(name: .shortAndLong, help: "Its namespace (default: default).") var namespace: String?

    func validate() throws {
        if (try? KindRegistry.builtIn.resolve(kind))?.kind != "VirtualTargetInstance" { throw ValidationError("describe supports instances: vtarget describe instance NAME") }
    }

    func run() async throws {
        let client = try await SupervisorConnection.ensure()
        let d: InstanceDescription
        do { d = try await client.get("/v1/instances/\(namespace ?? "default")/\(name)") } catch { throw error.asCommandError }
        let i = d.instance
        var lines: [(String, String)] = [
            ("Name", i.name), ("Namespace", i.namespace), ("Target", i.target), ("Machine", i.machine),
            ("Phase", i.phase + (i.reason.map { " (\($0))" } ?? "")), ("Ready", i.ready ? "True" : "False"),
            ("Desired", i.desired), ("Restart Policy", i.restartPolicy), ("Restarts", "\(i.restarts)"),
            ("Created", Table.timestamp(i.createdAt)),
        ]
        if let m = i.message { lines.append(("Message", m)) }
        if let p = i.pid { lines.append(("Shim PID", "\(p)")) }
        if let p = i.qemuPID { lines.append(("QEMU PID", "\(p)")) }
        if let t = i.startedAt { lines.append(("Started", Table.timestamp(t))) }
        if let t = i.expiresAt { lines.append(("Expires", Table.timestamp(t) + " (in \(Table.until(t)))")) }
        if let t = i.finishedAt { lines.append(("Finished", Table.timestamp(t))) }
        if let c = i.exitCode { lines.append(("Exit Code", "\(c)")) }
        if let s = i.signal { lines.append(("Signal", "\(s)")) }
        if let t = i.nextRestartAt { lines.append(("Next Restart", "in \(Table.until(t))")) }
        lines.append(("Directory", i.directory))
        var out = lines.map { ($0.0 + ":").padding(toLength: 16, withPad: " ", startingAt: 0) + $0.1 }
        out.append("Endpoints:" + (i.endpoints.isEmpty ? "      <none>" : ""))
        for (k, v) in i.endpoints.sorted(by: { $0.key < $1.key }) { out.append("  \(k): \(v)") }
        out.append("Conditions:")
        out.append(Table.render([["  TYPE", "STATUS", "REASON", "LAST TRANSITION"]]
            + i.conditions.map { ["  " + $0.type, $0.status, $0.reason ?? "", $0.lastTransitionTime.map(Table.timestamp) ?? ""] }))
        if let kept = i.bundles, !kept.isEmpty {
            out.append("Recorded runs (vtarget replay PATH; vtarget bundle ls \(i.name)):")
            out += kept.map { "  " + $0 }
        }
        if !i.stderrTail.isEmpty {
            out.append("QEMU stderr (last lines):")
            out += i.stderrTail.map { "  " + $0 }
        }
        out.append("Events:" + (d.events.isEmpty ? "         <none>" : ""))
        if !d.events.isEmpty {
            out.append(Table.render([["  TYPE", "REASON", "AGE", "MESSAGE"]] + d.events.map { ["  " + $0.type, $0.reason, Table.age($0.time), $0.message] }))
        }
        printOut(out.joined(separator: "\n"))
    }
}
