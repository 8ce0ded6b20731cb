import Foundation
import KubeRender
import MachineCatalog
import TargetSpec
import TestSupport
import Testing
import YAMLTree

let kubeGoldenDir = repoRoot + "/Tests/KubeRenderTests/Golden"
let testImage = "localhost/vtarget:test"

/// Decodes YAML as `vtarget render` does; `path` is what annotations name.
func decodeForKube(_ text: String, path: String = "in.yaml", options: DecodeOptions = DecodeOptions()) throws -> (DecodedResources, [SourceFile]) {
    let sources = [SourceFile(path: path, directory: "/work/proj", bytes: Array(text.utf8))]
    return (try ResourceDecoder(catalog: builtInCatalog(), options: options).decode(sources), sources)
}

func renderKube(_ text: String, path: String = "in.yaml") throws -> [KubeObject] {
    let (decoded, sources) = try decodeForKube(text, path: path)
    return try KubeRenderer(options: .init(image: testImage)).render(decoded.resources, sources: sources)
}

/// The objects as JSON values, to look into.
func jsonObjects(_ objects: [KubeObject]) throws -> [[String: Any]] {
    let text = try KubeOutput.text(objects, .json)
    let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
    if let list = value as? [String: Any], list["kind"] as? String == "List" { return list["items"] as? [[String: Any]] ?? [] }
    return [value as? [String: Any] ?? [:]]
}

/// Compares `text` with Golden/FILE; UPDATE_GOLDEN=1 rewrites the file.
func checkKubeGolden(_ file: String, _ text: String) throws {
    let path = kubeGoldenDir + "/" + file
    if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return
    }
    let expected = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "<missing \(path)>"
    #expect(text == expected, "\(file) differs from \(path); rerun with UPDATE_GOLDEN=1 after checking the change")
}

extension Dictionary where Key == String, Value == Any {
    subscript(path path: String...) -> Any? {
        var node: Any? = self
        for p in path {
            if let i = Int(p), let a = node as? [Any] { node = i < a.count ? a[i] : nil } else { node = (node as? [String: Any])?[p] }
        }
        return node
    }
}
