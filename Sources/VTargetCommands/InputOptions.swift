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

    func validate() throws {
        if files.isEmpty { throw ValidationError("no input: give -f FILE (or a directory)") }
    }

    struct Loaded {
        var catalog: MachineCatalog
        var runnables: [RunnableTarget]
        /// KubeVirt and Viti VMs, resolved.
        var vms: [RunnableVM] = []
        var directories: [String: String]

        /// Whether any target could run under KVM here, so the probe is worth running.
        var mayUseKVM: Bool {
            let host = HostProbe.architecture()
            return runnables.contains { r in
                guard r.target.qemu.accel != .tcg, let p = catalog.lookup(r.target.qemu.profileName) else { return false }
                return p.accelerators.contains("kvm") && (p.architectures.contains(host) || (host == .x86_64 && p.architectures.contains(.i386)))
            }
        }
    }

    /// Files → validated instances; warnings are printed, errors thrown.
    /// `relativeTo` replaces the files' own directory for relative paths
    /// (the supervisor's copy of a spec keeps the paths of the original).
    func load(environment: [String: String], relativeTo: String? = nil) throws -> Loaded {
        var sources = try InputFiles.sources(files, recursive: recursive)
        let catalog = try Environment.catalog(environment, for: sources)
        if let relativeTo { for i in sources.indices { sources[i].directory = relativeTo } }
        let decoder = ResourceDecoder(catalog: catalog, options: DecodeOptions(
            strict: !lenient, allowHostPaths: allowHostPaths, allowExtraArgs: allowExtraArgs))
        let decoded = try decoder.decode(sources)
        for w in decoded.warnings { printError(w.description) }
        let runnables = try Workload.instances(from: decoded.resources)
        let vms = try Workload.vms(from: decoded.resources, boards: runnables)
        if runnables.isEmpty && vms.isEmpty {
            throw DiagnosticError([Diagnostic(.error, at: nil, field: nil,
                "nothing to run in " + files.joined(separator: ", ") + ": no QemuVirtualTarget, VirtualTargetInstance, VirtualMachine, VirtualMachineInstance or Machine")])
        }
        var dirs: [String: String] = [:]
        for s in sources { dirs[s.path] = s.directory }
        return Loaded(catalog: catalog, runnables: runnables, vms: vms, directories: dirs)
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
