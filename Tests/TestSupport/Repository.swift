import Foundation
import MachineCatalog

/// The repository root, found from this file's path (Tests/TestSupport/).
public let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// The built-in machine profiles, parsed as vtarget parses them.
public func builtInCatalog() throws -> MachineCatalog {
    let dir = repoRoot + "/machines"
    let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().filter { $0.hasSuffix(".yaml") }
    return try MachineCatalog.parse(files: files.map { (dir + "/" + $0, [UInt8](FileManager.default.contents(atPath: dir + "/" + $0)!)) })
}

/// A QemuVirtualTarget's YAML with `qemuConfig` (lines without indentation) filled in.
public func targetYAML(_ name: String, _ qemuConfig: String) -> String {
    """
    apiVersion: qemu.kubetarget.dev/v1alpha1
    kind: QemuVirtualTarget
    metadata: {name: \(name)}
    spec:
      qemuConfig:
    \(qemuConfig.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n"))
    """
}

/// A target `node` on lm3s6965evb (firmware from the sample ConfigMap, one
/// UART) and a VirtualTargetInstance of it for each name.
public func nodeTargetYAML(instances: [String]) -> String {
    var yaml = targetYAML("node", """
        machine: lm3s6965evb
        drives: [{name: firmware, type: pflash, source: {configMap: {name: lm3s6965evb-firmware}}}]
        devices: [{name: uart0, type: serial}]
        """)
    for name in instances {
        yaml += "\n---\napiVersion: kubetarget.dev/v1alpha1\nkind: VirtualTargetInstance\nmetadata: {name: \(name)}\nspec: {targetRef: {name: node}}"
    }
    return yaml
}
