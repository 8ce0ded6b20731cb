import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HostOS
import TargetRuntime
import TargetSpec
import QMP
import ResourceKit

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a resource from files, as kubectl create does.",
        subcommands: [CreateConfigMap.self])
}

/// Synchronous on purpose: Swift 6.3.1 crashes optimising this as an async function.
struct CreateConfigMap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "configmap",
        abstract: "Make a ConfigMap from files: UTF-8 text goes to data, anything else to binaryData (base64).",
        discussion: "Example: vtarget create configmap stm32f4-firmware --from-file=firmware.elf=build/fw.elf --dry-run=client -o yaml > fw.yaml")

    enum Output: String, ExpressibleByArgument, CaseIterable { case yaml, json }

    @Argument(help: "The ConfigMap's name (a DNS-1123 label).")
    var name: String

    @Option(name: .customLong("from-file"), help: "[KEY=]PATH; KEY defaults to the file's name. Repeatable.")
    var fromFile: [String] = []

    @Option(name: .shortAndLong, help: "yaml or json.")
    var output: Output = .yaml

    @Option(name: .customLong("dry-run"), help: "client: print the object. Storing it needs the supervisor (vtarget apply).")
    var dryRun: String?

    @Option(name: .shortAndLong, help: "metadata.namespace.")
    var namespace: String?

    func validate() throws {
        if !Names.isDNSLabel(name) { throw ValidationError("\"\(name)\" is not a valid name: lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit") }
        if fromFile.isEmpty { throw ValidationError("give at least one --from-file=[KEY=]PATH") }
        guard let dryRun, dryRun == "client" || dryRun == "true" || dryRun.isEmpty else {
            throw ValidationError("only --dry-run=client is supported: it prints the ConfigMap for -f; pass that file to vtarget run")
        }
        if let namespace, !Names.isDNSLabel(namespace) { throw ValidationError("--namespace: \"\(namespace)\" is not a valid namespace") }
    }

    func run() throws {
        var data: [(String, String)] = []
        var binary: [(String, String)] = []
        for spec in fromFile {
            let (key, path): (String, String)
            if let eq = spec.firstIndex(of: "=") {
                (key, path) = (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
            } else {
                (key, path) = (String(spec.split(separator: "/").last ?? ""), spec)
            }
            guard ResourceDecoder.isConfigKey(key) else {
                throw ValidationError("--from-file \(spec): \"\(key)\" is not a valid key (letters, digits, '-', '_', '.')")
            }
            guard !(data + binary).contains(where: { $0.0 == key }) else {
                throw ValidationError("--from-file \(spec): key \"\(key)\" given twice")
            }
            let bytes = try InputFiles.readFile(path)
            if let text = String(validating: bytes, as: UTF8.self), !bytes.contains(0) {
                data.append((key, text))
            } else {
                binary.append((key, Data(bytes).base64EncodedString()))
            }
        }
        var meta: [String: JSONValue] = ["name": .string(name)]
        if let namespace { meta["namespace"] = .string(namespace) }
        var object: [(String, JSONValue)] = [("apiVersion", .string("v1")), ("kind", .string("ConfigMap")), ("metadata", .object(meta))]
        if !data.isEmpty { object.append(("data", .object(Dictionary(uniqueKeysWithValues: data.map { ($0.0, .string($0.1)) })))) }
        if !binary.isEmpty { object.append(("binaryData", .object(Dictionary(uniqueKeysWithValues: binary.map { ($0.0, .string($0.1)) })))) }
        switch output {
        case .json:
            printOut(JSONValue.object(Dictionary(uniqueKeysWithValues: object)).description)
        case .yaml:
            var lines: [String] = []
            for (k, v) in object {
                if case .object(let o) = v {
                    lines.append("\(k):")
                    for (ik, iv) in o.sorted(by: { $0.key < $1.key }) { lines.append("  \(ik): \(iv.description)") }
                } else {
                    lines.append("\(k): \(v.description)")
                }
            }
            printOut(lines.joined(separator: "\n"))
        }
    }
}
