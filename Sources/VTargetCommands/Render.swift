import ArgumentParser
import KubeRender
import QEMULaunch
import HostOS
import TargetRuntime
import TargetSpec
import VMLaunch
import VMRuntime
import YAMLTree

struct Render: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Print the exact QEMU command for each target and VM, or what a Kubernetes cluster needs to run them; nothing is started.",
        discussion: """
            --for kubernetes prints, instead of QEMU's command, the objects a cluster runs the same \
            resources with (no vtarget supervisor there): per instance a ConfigMap with its YAML and a \
            Pod running `vtarget run` on it (a Job, with activeDeadlineSeconds, when it has tests, a test \
            sidecar or a TTL), sidecars as containers of that Pod; per pool a Deployment of minReady \
            replicas; per CAN bus a Deployment and a Service running `vtarget can serve --listen`, \
            which the members' Pods join over socketcand TCP (VTARGET_REMOTE_CAN). Firmware ConfigMaps \
            are mounted as they are on the cluster (apply them too). KubeVirt's kinds (VirtualMachine, \
            VirtualMachineInstance, instancetypes, preferences) are printed as written, without status; \
            a Viti Machine becomes the VirtualMachine and PersistentVolumeClaims the Viti operator makes. \
            The image is \(Render.defaultImage) unless --image says otherwise (`make image` builds it).

            fd=3 is the QMP monitor's socket pair, which vtarget hands QEMU when it starts it; \
            each UART a serial or CAN device uses is a FIFO pair (-chardev pipe: serial-DEVICE.in \
            and .out, can-DEVICE.in and .out, in QEMU's directory) that vtarget makes and opens \
            before QEMU starts. Unless --no-sandbox, fd=4 and up are disk images vtarget \
            opens for QEMU (-add-fd, /dev/fdset/N). Paths are those a run would use; what is \
            in QEMU's directory, its working directory, is named relative to it (./serial-uart0).
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case argv, shell }
    enum Backend: String, ExpressibleByArgument, CaseIterable { case qemu, kubernetes }

    /// The image the rendered Pods name: vtarget's own version, built locally (`make image`).
    static var defaultImage: String { "localhost/vtarget:" + (VTarget.configuration.version.isEmpty ? "latest" : VTarget.configuration.version) }

    @OptionGroup var input: InputOptions

    @Option(name: .customLong("for"), help: "qemu: QEMU's command line; kubernetes: Kubernetes objects.")
    var backend: Backend = .qemu

    @Option(help: "argv: one argument per line; shell: one quoted command line (--for qemu).")
    var format: Format?

    @Option(name: .shortAndLong, help: "yaml or json (--for kubernetes).")
    var output: KubeOutput.Format?

    @Option(help: "The container image with vtarget and QEMU (--for kubernetes; default \(Render.defaultImage)).")
    var image: String?

    @Flag(name: .customLong("no-sandbox"), help: "Render as `run --no-sandbox` would start it.")
    var noSandbox = false

    func validate() throws {
        switch backend {
        case .qemu:
            if output != nil { throw ValidationError("-o/--output is for --for kubernetes; --for qemu takes --format argv|shell") }
            if image != nil { throw ValidationError("--image is for --for kubernetes") }
        case .kubernetes:
            if format != nil { throw ValidationError("--format is for --for qemu; --for kubernetes takes -o yaml|json") }
            if noSandbox { throw ValidationError("--no-sandbox is for --for qemu") }
            if let image, image.isEmpty || image.contains(where: \.isWhitespace) {
                throw ValidationError("--image: expected an image reference such as localhost/vtarget:0.1.0, got \"\(image)\"")
            }
        }
    }

    func run() async throws {
        if backend == .kubernetes { return try renderKubernetes() }
        let format = self.format ?? .argv
        let env = Environment.variables
        let loaded = try input.load(environment: env)
        let planner = LaunchPlanner(host: await HostProbe.facts(environment: env, probeKVM: loaded.mayUseKVM),
                                    options: LaunchOptions(passImagesAsFDs: !noSandbox))
        let base = RuntimeDirectory.base(environment: env) + "/run-PID"
        var problems: [Diagnostic] = []
        var outputs: [String] = []
        for r in loaded.runnables {
            let dir = base + "/" + (r.namespace == "default" ? r.name : "\(r.namespace).\(r.name)") + "/qemu"
            let resolver = DriveResolver(instanceDirectory: dir, materialize: false, environment: env)
            do {
                let drives = try await resolver.resolve(r) { loaded.directories[$0.location.file] }
                let plan = try planner.plan(r.target, profile: loaded.catalog.lookup(r.target.qemu.profileName)!, drives: drives, instanceDirectory: dir)
                for w in plan.warnings { printError("vtarget: \(r.name): warning: \(w)") }
                var text = loaded.runnables.count > 1 ? "# \(r.name)\n" : ""
                text += format == .shell ? ShellQuoting.line(plan.argv) : plan.argv.joined(separator: "\n")
                outputs.append(text)
            } catch let e as DiagnosticError {
                problems += e.diagnostics
            }
        }
        if !loaded.vms.isEmpty {
            let facts = await HostProbe.facts(environment: env, probeKVM: false)
            let preparation = try VMPreparation(environment: env)
            for r in loaded.vms {
                let dir = base + "/" + (r.namespace == "default" ? r.name : "\(r.namespace).\(r.name)") + "/qemu"
                do {
                    var host = try await VMHostPlan.inputs(r.vm, qemuDirectory: dir, disks: try preparation.plannedDisks(for: r.vm, in: dir),
                                                     host: facts, sandbox: !noSandbox, environment: env, materialize: false)
                    host.kernel = try await preparation.kernelFiles(for: r.vm, in: dir, materialize: false)
                    let plan = try VMLaunchPlanner.plan(vm: r.vm, host: host)
                    var text = loaded.runnables.count + loaded.vms.count > 1 ? "# \(r.name)\n" : ""
                    text += format == .shell ? ShellQuoting.line(plan.argv) : plan.argv.joined(separator: "\n")
                    outputs.append(text)
                } catch let e as VMLaunchError {
                    problems += e.diagnostics
                }
            }
        }
        if !problems.isEmpty { throw DiagnosticError(problems) }
        printOut(outputs.joined(separator: "\n"))
    }

    /// `--for kubernetes`: the resources decoded as `run` decodes them; the
    /// firmware ConfigMaps they name live on the cluster, so they need not be among the inputs.
    func renderKubernetes() throws {
        let env = Environment.variables
        let sources = try InputFiles.sources(input.files, recursive: input.recursive)
        let catalog = try Environment.catalog(env, for: sources)
        let decoder = ResourceDecoder(catalog: catalog, options: DecodeOptions(
            strict: !input.lenient, allowHostPaths: input.allowHostPaths, allowExtraArgs: input.allowExtraArgs))
        let decoded = try decoder.decode(sources)
        for w in decoded.warnings { printError(w.description) }
        let objects = try KubeRenderer(options: .init(image: image ?? Self.defaultImage)).render(decoded.resources, sources: sources)
        do {
            printOut(try KubeOutput.text(objects, output ?? .yaml), terminator: "")
        } catch {
            throw RuntimeError(error.description)
        }
    }
}
