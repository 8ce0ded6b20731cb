/// A `-device`/`-object` argument in QEMU's JSON syntax: typed values, no
/// `,,` escaping, keys sorted by `QEMUJSON` so a plan is the same argv byte
/// for byte.
struct QEMUProperties: Encodable, Sendable {
    enum Value: Encodable, Sendable {
        case string(String), int(Int), bool(Bool)

        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .string(let s): try c.encode(s)
            case .int(let i): try c.encode(i)
            case .bool(let b): try c.encode(b)
            }
        }
    }

    private(set) var values: [String: Value] = [:]

    init(_ pairs: [(String, Value)]) {
        for (k, v) in pairs { values[k] = v }
    }

    subscript(key: String) -> Value? {
        get { values[key] }
        set { values[key] = newValue }
    }

    func encode(to encoder: any Encoder) throws {
        try values.encode(to: encoder)
    }
}
