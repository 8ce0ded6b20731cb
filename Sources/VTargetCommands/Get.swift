import InstanceContract
import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ControlAPI
import TargetRuntime
import YAMLTree

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List targets, instances, pools, configmaps or machines, as kubectl get does.",
        discussion: "KIND: targets (qvt), instances (vti, inst), pools, configmaps (cm), machines. -o json and -o yaml print the objects with their status.")

    @Argument(help: "targets | instances | pools | configmaps | machines")
    var kind: String

    @Argument(help: "Only this one.")
    var name: String?

    @OptionGroup var ns: NamespaceOptions

    @Option(name: .shortAndLong, help: "wide, yaml, json or name.")
    var output: String?

    func validate() throws {
        if Table.kind(kind) == nil && !["machines", "machine"].contains(kind.lowercased()) {
            throw ValidationError("unknown kind \(kind); valid: targets, instances, pools, configmaps, machines")
        }
        if let output, !["wide", "yaml", "json", "name"].contains(output) { throw ValidationError("-o: expected wide, yaml, json or name, got \(output)") }
    }

    func run() async throws {
        let lower = kind.lowercased()
        if lower.hasPrefix("machine") {
            let m = try Machines.parse(output == "wide" || output == "name" ? ["-o", output!] : [])
            return try await m.run()
        }
        let client = try await SupervisorConnection.ensure()
        let k = Table.kind(kind)!
        do {
            if k == "VirtualTargetPool" {
                var items: [PoolInfo] = try await client.get("/v1/pools?" + ns.query)
                if let name { items = items.filter { $0.name == name } }
                return try print(items.map(Table.node), names: items.map { (k, $0.name) }) {
                    let header = (ns.allNamespaces ? ["NAMESPACE"] : []) + ["NAME", "TARGET", "READY", "CLAIMED", "MEMBERS", "MIN", "MAX", "RECYCLE"]
                    return [header] + items.map { p in
                        (ns.allNamespaces ? [p.namespace] : []) + [p.name, p.target, String(p.ready), String(p.claimed), String(p.members),
                                                                String(p.minReady), String(p.maxInstances), p.recycle]
                    }
                }
            }
            if k == "VirtualTargetInstance" {
                var items: [InstanceInfo] = try await client.get("/v1/instances?" + ns.query)
                if let name { items = items.filter { $0.name == name } }
                try print(items.map(Table.node), names: items.map { ("VirtualTargetInstance", $0.name) }) {
                    let wide = output == "wide"
                    let header = (ns.allNamespaces ? ["NAMESPACE"] : []) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
                        + (wide ? ["MACHINE", "TARGET", "PID", "QEMU PID", "EXPIRES", "REASON"] : [])
                    return [header] + items.map { i -> [String] in
                        var row: [String] = ns.allNamespaces ? [i.namespace] : []
                        row += [i.name, i.ready ? "1/1" : "0/1", Table.status(i), String(i.restarts), Table.age(i.startedAt ?? i.createdAt)]
                        if wide {
                            let pid = i.pid.map { String($0) } ?? "-", qemu = i.qemuPID.map { String($0) } ?? "-"
                            row += [i.machine, i.target, pid, qemu, i.expiresAt.map { Table.until($0) } ?? "-", i.reason ?? "-"]
                        }
                        return row
                    }
                }
            } else {
                var items: [ResourceInfo] = try await client.get("/v1/resources?kind=\(k)&" + ns.query)
                if let name { items = items.filter { $0.name == name } }
                let nodes = items.compactMap { (try? YAMLParser.parse($0.yaml, file: $0.name))?.first?.root }
                try print(nodes, names: items.map { ($0.kind, $0.name) }) {
                    let extra = k == "ConfigMap" ? "DATA" : k == "QemuVirtualTarget" ? "MACHINE" : "TARGET"
                    let header = (ns.allNamespaces ? ["NAMESPACE"] : []) + ["NAME", extra, "AGE"]
                    return [header] + items.map { r in
                        (ns.allNamespaces ? [r.namespace] : []) + [r.name, r.summary.values.first ?? "", Table.age(r.createdAt)]
                    }
                }
            }
        } catch let e as ControlError { throw e.asCommandError }
    }

    /// One object when a name was given, else a List; nothing found is an
    /// error for a name (as kubectl says NotFound) and a note for a listing.
    private func print(_ nodes: [YAMLNode], names: [(String, String)], table: () -> [[String]]) throws {
        if let name, nodes.isEmpty {
            printError("Error from server (NotFound): \(Table.qualified(Table.kind(kind)!)) \"\(name)\" not found")
            throw CommandExit(code: 1)
        }
        switch output {
        case "json": printOut(Table.json(name != nil ? nodes[0] : Table.list(nodes)))
        case "yaml": printOut(YAMLEmitter.emit(name != nil ? nodes[0] : Table.list(nodes)), terminator: "")
        case "name": for (k, n) in names { printOut("\(Table.qualified(k))/\(n)") }
        default:
            if nodes.isEmpty {
                return printOut(ns.allNamespaces ? "No resources found" : "No resources found in \(ns.effective) namespace.")
            }
            printOut(Table.render(table()))
        }
    }
}

struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "An instance's status, endpoints and recent events.")

    @Argument(help: "instance") var kind: String
    @Argument(help: "The instance's name.") var name: String
    @Option(name: .shortAndLong, help: "Its namespace (default: default).") var namespace: String?

    func validate() throws {
        if Table.kind(kind) != "VirtualTargetInstance" { throw ValidationError("describe supports instances: vtarget describe instance NAME") }
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

extension Table {
    /// Kinds by kubectl's habits: singular, plural, short names.
    static func kind(_ word: String) -> String? {
        switch word.lowercased() {
        case "target", "targets", "qvt", "qemuvirtualtarget", "qemuvirtualtargets": return "QemuVirtualTarget"
        case "instance", "instances", "vti", "inst", "virtualtargetinstance", "virtualtargetinstances": return "VirtualTargetInstance"
        case "configmap", "configmaps", "cm": return "ConfigMap"
        case "pool", "pools", "vtp", "virtualtargetpool", "virtualtargetpools": return "VirtualTargetPool"
        default: return nil
        }
    }

    static func qualified(_ kind: String) -> String {
        kind == "ConfigMap" ? "configmap" : kind.lowercased() + ".kubetarget.dev"
    }

    static func render(_ rows: [[String]], widths: [Int]) -> String {
        rows.map { r in
            r.enumerated().map { i, c in
                i == r.count - 1 || i >= widths.count ? c : c + String(repeating: " ", count: max(1, widths[i] - c.count + 3))
            }.joined()
        }.joined(separator: "\n")
    }

    /// kubectl's ages: 45s, 3m12s, 5h, 2d.
    static func age(_ since: Double) -> String { duration(max(0, ShimStatus.now - since)) }
    static func until(_ time: Double) -> String { duration(max(0, time - ShimStatus.now)) }

    static func duration(_ s: Double) -> String {
        let t = Int(s)
        if t < 120 { return "\(t)s" }
        if t < 600 { return "\(t / 60)m\(t % 60)s" }
        if t < 3 * 3600 { return "\(t / 60)m" }
        if t < 48 * 3600 { return "\(t / 3600)h" }
        return "\(t / 86400)d"
    }

    static func timestamp(_ t: Double) -> String {
        Date(timeIntervalSince1970: t).formatted(.iso8601)
    }

    static func status(_ i: InstanceInfo) -> String {
        if i.nextRestartAt != nil { return "BackOff" }
        if i.phase == "Running" && !i.ready { return "Running" }
        return i.phase
    }

    // MARK: Objects for -o json / -o yaml, built as YAML nodes (one tree for both)

    static func str(_ s: String) -> YAMLNode { YAMLNode(.scalar(s, .doubleQuoted), at: SourceLocation(file: "", line: 0, column: 0)) }
    static func plain(_ s: String) -> YAMLNode { YAMLNode(.scalar(s, .plain), at: SourceLocation(file: "", line: 0, column: 0)) }
    static func map(_ pairs: [(String, YAMLNode?)]) -> YAMLNode {
        YAMLNode(.mapping(pairs.compactMap { k, v in v.map { YAMLPair(key: str(k), value: $0) } }), at: SourceLocation(file: "", line: 0, column: 0))
    }
    static func seq(_ items: [YAMLNode]) -> YAMLNode { YAMLNode(.sequence(items), at: SourceLocation(file: "", line: 0, column: 0)) }
    static func time(_ t: Double?) -> YAMLNode? { t.map { str(timestamp($0)) } }

    static func list(_ items: [YAMLNode]) -> YAMLNode {
        map([("apiVersion", str("v1")), ("kind", str("List")), ("items", seq(items))])
    }

    static func node(_ i: InstanceInfo) -> YAMLNode {
        map([
            ("apiVersion", str("kubetarget.dev/v1alpha1")), ("kind", str("VirtualTargetInstance")),
            ("metadata", map([("name", str(i.name)), ("namespace", str(i.namespace)), ("uid", str(i.uid)),
                              ("creationTimestamp", time(i.createdAt))])),
            ("spec", map([("targetRef", map([("kind", str("QemuVirtualTarget")), ("name", str(i.target))])),
                          ("restartPolicy", str(i.restartPolicy)), ("desired", str(i.desired))])),
            ("status", map([
                ("phase", str(i.phase)), ("reason", i.reason.map(str)), ("message", i.message.map(str)),
                ("conditions", seq(i.conditions.map { c in
                    map([("type", str(c.type)), ("status", str(c.status)), ("reason", c.reason.map(str)),
                         ("message", c.message.map(str)), ("lastTransitionTime", time(c.lastTransitionTime))])
                })),
                ("backend", str("qemu")), ("machine", str(i.machine)),
                ("pid", i.pid.map { plain("\($0)") }), ("qemuPid", i.qemuPID.map { plain("\($0)") }),
                ("startedAt", time(i.startedAt)), ("expiresAt", time(i.expiresAt)), ("finishedAt", time(i.finishedAt)),
                ("exitCode", i.exitCode.map { plain("\($0)") }), ("signal", i.signal.map { plain("\($0)") }),
                ("restarts", plain("\(i.restarts)")),
                ("stderrTail", i.stderrTail.isEmpty ? nil : seq(i.stderrTail.map(str))),
                ("endpoints", endpoints(i.endpoints)),
                ("pool", i.pool.map(str)), ("claimedAt", time(i.claimedAt)), ("claimExpiresAt", time(i.claimExpiresAt)),
            ])),
        ])
    }

    static func node(_ p: PoolInfo) -> YAMLNode {
        map([
            ("apiVersion", str("kubetarget.dev/v1alpha1")), ("kind", str("VirtualTargetPool")),
            ("metadata", map([("name", str(p.name)), ("namespace", str(p.namespace))])),
            ("spec", map([("targetRef", map([("kind", str("QemuVirtualTarget")), ("name", str(p.target))])),
                          ("minReady", plain(String(p.minReady))), ("maxInstances", plain(String(p.maxInstances))),
                          ("recycle", str(p.recycle))])),
            ("status", map([("members", plain(String(p.members))), ("ready", plain(String(p.ready))), ("claimed", plain(String(p.claimed)))])),
        ])
    }

    /// `serial.uart0` → `{serial: {uart0: ...}}`, as the contract writes them.
    static func endpoints(_ e: [String: String]) -> YAMLNode {
        var serial: [(String, YAMLNode?)] = []
        var rest: [(String, YAMLNode?)] = []
        for (k, v) in e.sorted(by: { $0.key < $1.key }) {
            if k.hasPrefix("serial.") { serial.append((String(k.dropFirst(7)), str(v))) } else { rest.append((k, str(v))) }
        }
        return map((serial.isEmpty ? [] : [("serial", map(serial))]) + rest)
    }

    /// JSON from a node tree: plain scalars that read as null, booleans or
    /// numbers become those; everything else is a string.
    static func json(_ node: YAMLNode, indent: String = "") -> String {
        let inner = indent + "  "
        switch node.content {
        case .scalar(let s, let style):
            if style == .plain {
                if node.isNull { return "null" }
                if s == "true" || s == "false" { return s }
                if Int(s) != nil || (Double(s) != nil && s.contains(".")) { return s }
            }
            return jsonString(s)
        case .sequence(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { inner + json($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .mapping(let pairs):
            if pairs.isEmpty { return "{}" }
            return "{\n" + pairs.map { inner + jsonString($0.key.scalar ?? "") + ": " + json($0.value, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "}"
        }
    }

    static func jsonString(_ s: String) -> String {
        { let e = JSONEncoder(); e.outputFormatting = [.withoutEscapingSlashes]; return String(decoding: (try? e.encode(s)) ?? Data("\"\"".utf8), as: UTF8.self) }()
    }
}
