import ArgumentParser
import MachineCatalog
import HostOS
import TargetRuntime
import TargetSpec
import YAMLTree

/// Which files are read and how strictly: what `InputOptions` parses, as a
/// plain value that `run`'s fast path (`RunRequest`) can build without
/// ArgumentParser, and the reading itself.
struct InputSelection: Equatable, Sendable {
    var files: [String] = []
    var recursive = false
    var lenient = false
    var allowHostPaths = false
    var allowExtraArgs = false

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

extension PlainArguments {
    /// A command's plain flags beside `InputOptions`' (`-f FILE`, repeatable;
    /// `-R`; the decoding flags), which go to its selection at `input`.
    init(input: WritableKeyPath<Value, InputSelection> & Sendable,
         options: [String: @Sendable (inout Value, String) -> Void], flags: [String: @Sendable (inout Value) -> Void],
         short: [String: String] = [:], afterTerminator: (@Sendable (inout Value, [String]) -> Void)? = nil) {
        let inputFlags: [String: @Sendable (inout Value) -> Void] = [
            "recursive": { $0[keyPath: input].recursive = true },
            "lenient": { $0[keyPath: input].lenient = true },
            "allow-host-paths": { $0[keyPath: input].allowHostPaths = true },
            "allow-extra-args": { $0[keyPath: input].allowExtraArgs = true },
        ]
        self.init(options: options.merging(["filename": { $0[keyPath: input].files.append($1) }]) { mine, _ in mine },
                  flags: flags.merging(inputFlags) { mine, _ in mine },
                  short: short.merging(["-f": "filename", "-R": "recursive"]) { mine, _ in mine },
                  repeatable: ["filename"], afterTerminator: afterTerminator)
    }
}
