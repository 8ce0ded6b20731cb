import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ControlAPI
import HostOS
import InstanceContract
import TargetRuntime
import TargetSpec
import ResourceKit
import YAMLTree

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a resource from files, as kubectl create does.",
        subcommands: [CreateConfigMap.self])
}

/// `kubectl create configmap`: stored through the supervisor, or with
/// `--dry-run=client` printed for `vtarget run -f`.
struct CreateConfigMap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "configmap",
        abstract: "Make a ConfigMap from files: UTF-8 text goes to data, anything else to binaryData (base64).",
        discussion: """
            Without --dry-run it is stored through the supervisor (as kubectl create does; an existing one is an error), \
            for targets you apply. With --dry-run=client it is printed instead, for vtarget run -f:
              vtarget create configmap stm32f4-firmware --from-file=firmware.elf=build/fw.elf --dry-run=client -o yaml > fw.yaml
            A bare --dry-run means client, with kubectl's deprecation warning.
            """,
        aliases: ["cm"])

    enum Output: String, ExpressibleByArgument, CaseIterable { case yaml, json, name }

    /// kubectl's `--dry-run` strategies.
    enum DryRun: Equatable { case none, client }

    @Argument(help: "The ConfigMap's name (a DNS-1123 label).")
    var name: String

    @Option(name: .customLong("from-file"), help: "[KEY=]PATH; KEY defaults to the file's name. Repeatable.")
    var fromFile: [String] = []

    @Option(name: .shortAndLong, help: "yaml, json or name: print the object (default with --dry-run=client: yaml; else configmap/NAME created).")
    var output: Output?

    @Option(name: .customLong("dry-run"), help: "client: print the ConfigMap, store nothing. none (the default): store it through the supervisor.")
    var dryRun: String?

    @Option(name: .shortAndLong, help: "metadata.namespace (default: default).")
    var namespace: String?

    /// What a bare `--dry-run` becomes before parsing: kubectl's flag has
    /// an optional value, which ArgumentParser options do not.
    static let bareDryRun = "unchanged"

    /// `vtarget create configmap … --dry-run …` with a bare `--dry-run`
    /// rewritten to carry `bareDryRun`, as kubectl reads it; a value given
    /// after a space (`--dry-run client`) is still that value.
    static func acceptingBareDryRun(_ arguments: [String]) -> [String] {
        guard arguments.first == "create" else { return arguments }
        var out = arguments
        let values = ["client", "server", "none", "true", "false"]
        for i in out.indices {
            if out[i] == "--" { break }
            if out[i] == "--dry-run", i + 1 == out.count || !values.contains(out[i + 1]) {
                out[i] = "--dry-run=" + bareDryRun
            }
        }
        return out
    }

    /// The strategy, and kubectl's warning for its deprecated spellings.
    func strategy() throws -> (DryRun, warning: String?) {
        switch dryRun {
        case nil, "none": return (.none, nil)
        case "client": return (.client, nil)
        case Self.bareDryRun: return (.client, "--dry-run is deprecated and can be replaced with --dry-run=client.")
        case "true": return (.client, "--dry-run=true is deprecated (boolean value) and can be replaced with --dry-run=client.")
        case "false": return (.none, "--dry-run=false is deprecated (boolean value) and can be replaced with --dry-run=none.")
        case "server": throw ValidationError("--dry-run=server needs a server-side dry run, which the supervisor does not do; valid: client, none")
        case let other?: throw ValidationError("Invalid dry-run value (\(other)). Must be \"none\", \"server\", or \"client\".")
        }
    }

    func validate() throws {
        if !Names.isDNSLabel(name) { throw ValidationError("\"\(Diagnostic.escapingControls(name))\" is not a valid name: lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit") }
        if fromFile.isEmpty { throw ValidationError("give at least one --from-file=[KEY=]PATH") }
        _ = try strategy()
        if let namespace, !Names.isDNSLabel(namespace) { throw ValidationError("--namespace: \"\(Diagnostic.escapingControls(namespace))\" is not a valid namespace") }
    }

    /// The ConfigMap, keys in order within data and binaryData, as kubectl prints them.
    func object() throws -> YAMLNode {
        var data: [(String, YAMLNode)] = []
        var binary: [(String, YAMLNode)] = []
        for spec in fromFile {
            let (key, path): (String, String)
            if let eq = spec.firstIndex(of: "=") {
                (key, path) = (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
            } else {
                (key, path) = (String(spec.split(separator: "/").last ?? ""), spec)
            }
            let shown = Diagnostic.escapingControls(spec)
            guard ResourceDecoder.isConfigKey(key) else {
                throw ValidationError("--from-file \(shown): \"\(Diagnostic.escapingControls(key))\" is not a valid key (letters, digits, '-', '_', '.')")
            }
            guard !(data + binary).contains(where: { $0.0 == key }) else {
                throw ValidationError("--from-file \(shown): key \"\(key)\" given twice")
            }
            let bytes = try InputFiles.readFile(path)
            if let text = String(validating: bytes, as: UTF8.self), !bytes.contains(0) {
                data.append((key, .string(text)))
            } else {
                binary.append((key, .string(Data(bytes).base64EncodedString())))
            }
        }
        var meta: [(String, YAMLNode)] = [("name", .string(name))]
        if let namespace { meta.append(("namespace", .string(namespace))) }
        var object: [(String, YAMLNode)] = [("apiVersion", .string("v1")), ("kind", .string("ConfigMap")), ("metadata", .mapping(meta))]
        if !binary.isEmpty { object.append(("binaryData", .mapping(binary.sorted { $0.0 < $1.0 }))) }
        if !data.isEmpty { object.append(("data", .mapping(data.sorted { $0.0 < $1.0 }))) }
        return .mapping(object)
    }

    func run() async throws {
        let (strategy, warning) = try strategy()
        if let warning { printError("warning: " + warning) }
        let object = try object()
        if strategy == .client {
            return show(object, output ?? .yaml)
        }
        let ns = namespace ?? "default"
        let client = try await SupervisorConnection.ensure()
        do {
            // kubectl create never replaces: an existing ConfigMap is an error (apply is for changing one).
            let existing: [ResourceInfo] = try await client.get("/v1/resources?kind=ConfigMap&namespace=\(ns)")
            if existing.contains(where: { $0.name == name }) {
                printError("error: failed to create configmap: configmaps \"\(name)\" already exists (vtarget apply -f changes one)")
                throw CommandExit(code: ExitCode.failure)
            }
            let resource = AppliedResource(kind: "ConfigMap", namespace: ns, name: name, yaml: YAMLEmitter.emit(object),
                                           directory: FileManager.default.currentDirectoryPath, options: ReadOptions())
            let _: [ObjectResult] = try await client.send(.POST, "/v1/apply", ApplyRequest(resources: [resource]))
        } catch let e as ControlError { throw e.asCommandError }
        if let output { return show(object, output) }
        printOut("configmap/\(name) created")
    }

    func show(_ object: YAMLNode, _ output: Output) {
        switch output {
        case .json: printOut(Table.json(object))
        case .yaml: printOut(YAMLEmitter.emit(object), terminator: "")
        case .name: printOut("configmap/\(name)")
        }
    }
}
