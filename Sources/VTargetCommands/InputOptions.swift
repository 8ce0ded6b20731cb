import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import MachineCatalog
import HostOS
import TargetRuntime
import TargetSpec
import YAMLTree

/// How strictly resources are read: the flags `run`, `apply`, `render`, `diff` and `sync` share.
struct DecodeFlags: ParsableArguments {
    @Flag(help: "Unknown fields are warnings instead of errors.")
    var lenient = false

    @Flag(help: "Allow drive sources of the form hostPath: {path: /abs/file}.")
    var allowHostPaths = false

    @Flag(help: "Allow spec.qemuConfig.extraArgs (never -sandbox, -monitor, -qmp, -daemonize, -runas).")
    var allowExtraArgs = false
}

/// The flags every command that reads resources shares, and the reading itself.
struct InputOptions: ParsableArguments {
    @Option(name: [.customShort("f"), .customLong("filename")], help: "A YAML file or directory (repeatable); - for standard input.")
    var files: [String] = []

    @Flag(name: [.customShort("R"), .long], help: "Read directories recursively.")
    var recursive = false

    @OptionGroup var decoding: DecodeFlags

    var lenient: Bool { get { decoding.lenient } set { decoding.lenient = newValue } }
    var allowHostPaths: Bool { get { decoding.allowHostPaths } set { decoding.allowHostPaths = newValue } }
    var allowExtraArgs: Bool { get { decoding.allowExtraArgs } set { decoding.allowExtraArgs = newValue } }

    /// The same settings as a plain value (`run`'s fast path builds one without ArgumentParser).
    var selection: InputSelection {
        InputSelection(files: files, recursive: recursive, lenient: lenient, allowHostPaths: allowHostPaths, allowExtraArgs: allowExtraArgs)
    }

    func validate() throws { try selection.validate() }

    func load(environment: [String: String], relativeTo: String? = nil) throws -> InputSelection.Loaded {
        try selection.load(environment: environment, relativeTo: relativeTo)
    }
}

enum Environment {
    static var variables: [String: String] { ProcessInfo.processInfo.environment }

    /// The binary's own path, to find the machines/ shipped beside it.
    static var executable: String { Processes.ownExecutable }

    static func catalog(_ env: [String: String]) throws -> MachineCatalog {
        try InputFiles.loadCatalog(environment: env, executable: executable)
    }

    /// The catalog to decode `sources` with: an empty one when they cannot
    /// hold a board (`ResourceDecoder.mayNameMachines`), so a VM's start
    /// never reads the machine profiles.
    static func catalog(_ env: [String: String], for sources: [SourceFile]) throws -> MachineCatalog {
        ResourceDecoder.mayNameMachines(sources) ? try catalog(env) : MachineCatalog()
    }
}
