#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import YAMLTree

/// Objects as `-o json` (one object, or kubectl's `List`) or `-o yaml`
/// (documents separated by `---`), keys sorted so output is stable.
public enum KubeOutput {
    public enum Format: String, Sendable, CaseIterable { case yaml, json }

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func text(_ objects: [KubeObject], _ format: Format) throws(Problem) -> String {
        switch format {
        case .json:
            if objects.count == 1 { return try json(objects[0]) }
            return try json(ObjectList(items: objects))
        case .yaml:
            var docs: [YAMLNode] = []
            for o in objects {
                let text = try json(o)
                do {
                    guard let root = try YAMLParser.parse(text, file: "<\(o.kind) \(o.name)>").first?.root else {
                        throw Problem(description: "\(o.kind) \(o.name) encoded to nothing")
                    }
                    docs.append(root)
                } catch let e as YAMLParseError {
                    throw Problem(description: "\(o.kind) \(o.name): \(e.message)")
                } catch let e as Problem {
                    throw e
                } catch {
                    throw Problem(description: "\(o.kind) \(o.name): \(error)")
                }
            }
            return YAMLEmitter.emit(docs)
        }
    }

    /// kubectl's `-o json` wrapper for several objects.
    struct ObjectList: Encodable {
        var apiVersion = "v1"
        var kind = "List"
        var items: [KubeObject]
    }

    static func json(_ value: some Encodable) throws(Problem) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
        } catch {
            throw Problem(description: "cannot encode: \(error)")
        }
    }
}
