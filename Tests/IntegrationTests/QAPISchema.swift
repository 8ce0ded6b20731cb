import QMP

/// QEMU's own description of its JSON input (`query-qmp-schema`): checks an
/// argument the way QEMU's input visitor will, member names, types, required
/// members and union branches, so a golden cannot hold JSON that QEMU refuses.
struct QAPISchema {
    private var types: [String: JSONValue] = [:]
    private var commands: [String: JSONValue] = [:]

    init(_ entries: JSONValue) {
        guard case .array(let all) = entries else { return }
        for e in all {
            guard let name = e["name"]?.stringValue else { continue }
            if e["meta-type"]?.stringValue == "command" { commands[name] = e } else { types[name] = e }
        }
    }

    /// The (masked) name of a command's argument type: `blockdev-add` takes `BlockdevOptions`.
    func argumentType(of command: String) -> String? { commands[command]?["arg-type"]?.stringValue }

    /// The cases of a union's tag, e.g. the chardev backends `chardev-add` knows.
    func tagValues(of command: String, member: String) -> [String] {
        guard let args = argumentType(of: command),
              let m = members(of: args, .object([:])).first(where: { $0["name"]?.stringValue == member }),
              let t = m["type"]?.stringValue, let union = types[t], let tag = union["tag"]?.stringValue,
              let tagMember = members(of: t, .object([:])).first(where: { $0["name"]?.stringValue == tag }),
              let enumType = tagMember["type"]?.stringValue else { return [] }
        return strings(types[enumType]?["values"])
    }

    func problems(_ value: JSONValue, type name: String, at path: String) -> [String] {
        guard let t = types[name] else { return ["\(path): schema type \(name) is unknown"] }
        switch t["meta-type"]?.stringValue {
        case "builtin":
            let json = t["json-type"]?.stringValue ?? "?"
            switch (json, value) {
            case ("value", _), ("string", .string), ("boolean", .bool), ("null", .null), ("number", .number), ("object", .object):
                return []
            case ("int", .number(let n)) where n.rounded() == n:
                return []
            default:
                return ["\(path): expected a JSON \(json), got \(value)"]
            }
        case "enum":
            let values = strings(t["values"])
            guard case .string(let s) = value, values.contains(s) else {
                return ["\(path): \(value) is not one of " + values.joined(separator: ", ")]
            }
            return []
        case "array":
            guard case .array(let items) = value, let element = t["element-type"]?.stringValue else {
                return ["\(path): expected an array, got \(value)"]
            }
            return items.enumerated().flatMap { problems($1, type: element, at: "\(path)[\($0)]") }
        case "alternate":
            var all: [String] = []
            for case .object(let m) in array(t["members"]) {
                guard let branch = m["type"]?.stringValue else { continue }
                let p = problems(value, type: branch, at: path)
                if p.isEmpty { return [] }
                all += p
            }
            return ["\(path): matches no branch (" + all.joined(separator: "; ") + ")"]
        case "object":
            guard case .object(let given) = value else { return ["\(path): expected an object, got \(value)"] }
            let members = members(of: name, value)
            var out: [String] = []
            for key in given.keys.sorted() where !members.contains(where: { $0["name"]?.stringValue == key }) {
                out.append("\(path): unknown member \"\(key)\"")
            }
            for m in members {
                guard let key = m["name"]?.stringValue, let type = m["type"]?.stringValue else { continue }
                if let v = given[key] {
                    out += problems(v, type: type, at: path + "." + key)
                } else if m["default"] == nil {
                    out.append("\(path): required member \"\(key)\" is missing")
                }
            }
            return out
        default:
            return ["\(path): cannot check meta-type \(t["meta-type"]?.description ?? "?")"]
        }
    }

    /// An object's members, with those of the union branch its tag selects.
    private func members(of name: String, _ value: JSONValue) -> [JSONValue] {
        guard let t = types[name] else { return [] }
        var out = array(t["members"])
        if let tag = t["tag"]?.stringValue, case .string(let chosen)? = value[tag] {
            for case .object(let v) in array(t["variants"]) where v["case"]?.stringValue == chosen {
                if let branch = v["type"]?.stringValue { out += members(of: branch, value) }
            }
        }
        return out
    }

    private func array(_ v: JSONValue?) -> [JSONValue] {
        if case .array(let a)? = v { return a }
        return []
    }

    private func strings(_ v: JSONValue?) -> [String] { array(v).compactMap(\.stringValue) }
}
