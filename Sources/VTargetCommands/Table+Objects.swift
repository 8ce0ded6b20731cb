#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import InstanceContract
import ControlAPI
import ResourceKit
import HostOS
import TargetRuntime
import YAMLTree

extension Table {
    /// kubectl's `-o name` prefix for a kind, from the registry.
    static func qualified(_ kind: String) -> String {
        KindRegistry.builtIn.kind(named: kind)?.qualifiedName ?? kind.lowercased()
    }

    /// Each column's widest cell.
    static func widths(_ rows: [[String]]) -> [Int] {
        rows.reduce(into: [Int]()) { w, row in
            for (i, c) in row.enumerated() { if i < w.count { w[i] = max(w[i], c.count) } else { w.append(c.count) } }
        }
    }

    static func render(_ rows: [[String]], widths: [Int]) -> String {
        rows.map { r in
            r.enumerated().map { i, c in
                i == r.count - 1 || i >= widths.count ? c : c + String(repeating: " ", count: max(1, widths[i] - c.count + 3))
            }.joined()
        }.joined(separator: "\n")
    }

    /// kubectl's ages: 45s, 3m12s, 5h, 2d.
    static func age(_ since: Double) -> String { Timestamp.duration(ShimStatus.now - since) }
    static func until(_ time: Double) -> String { Timestamp.duration(time - ShimStatus.now) }

    static func timestamp(_ t: Double) -> String {
        Date(timeIntervalSince1970: t).formatted(.iso8601)
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

    /// `apiVersion` and `kind` of an object, from the registry.
    static func typeMeta(_ kind: String) -> [(String, YAMLNode?)] {
        [("apiVersion", KindRegistry.builtIn.kind(named: kind).map { str($0.apiVersion) }), ("kind", str(kind))]
    }

    static func node(_ i: InstanceInfo) -> YAMLNode {
        map(typeMeta("VirtualTargetInstance") + [
            ("metadata", map([("name", str(i.name)), ("namespace", str(i.namespace)), ("uid", str(i.uid)),
                              ("creationTimestamp", time(i.createdAt)), ("labels", i.labels.map(labels))])),
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
                ("restarts", plain("\(i.restarts)")), ("nextRestartAt", time(i.nextRestartAt)),
                ("stderrTail", i.stderrTail.isEmpty ? nil : seq(i.stderrTail.map(str))),
                ("endpoints", endpoints(i.endpoints)),
                ("pool", i.pool.map(str)), ("claimedAt", time(i.claimedAt)), ("claimExpiresAt", time(i.claimExpiresAt)),
                ("recording", i.bundles.map { b in map([("bundles", seq(b.map(str))), ("lastBundle", b.last.map(str))]) }),
            ])),
        ])
    }

    static func node(_ p: PoolInfo) -> YAMLNode {
        map(typeMeta("VirtualTargetPool") + [
            ("metadata", map([("name", str(p.name)), ("namespace", str(p.namespace)), ("labels", p.labels.map(labels))])),
            ("spec", map([("targetRef", map([("kind", str("QemuVirtualTarget")), ("name", str(p.target))])),
                          ("minReady", plain(String(p.minReady))), ("maxInstances", plain(String(p.maxInstances))),
                          ("recycle", str(p.recycle))])),
            ("status", map([("members", plain(String(p.members))), ("ready", plain(String(p.ready))), ("claimed", plain(String(p.claimed)))])),
        ])
    }

    static func labels(_ l: [String: String]) -> YAMLNode {
        map(l.sorted { $0.key < $1.key }.map { ($0.key, str($0.value)) })
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
