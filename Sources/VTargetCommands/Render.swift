import ArgumentParser
import QEMULaunch
import HostOS
import TargetRuntime
import TargetSpec
import YAMLTree

struct Render: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the exact QEMU command for each target; nothing is started.",
        discussion: """
            fd=3 is the QMP monitor's socket pair, which vtarget hands QEMU when it starts it; \
            each UART a serial or CAN device uses is a FIFO pair (-chardev pipe: serial-DEVICE.in \
            and .out, can-DEVICE.in and .out, in QEMU's directory) that vtarget makes and opens \
            before QEMU starts. Unless --no-sandbox, fd=4 and up are disk images vtarget \
            opens for QEMU (-add-fd, /dev/fdset/N). Paths are those a run would use; what is \
            in QEMU's directory, its working directory, is named relative to it (./serial-uart0).
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case argv, shell }

    @OptionGroup var input: InputOptions

    @Option(help: "argv: one argument per line; shell: one quoted command line.")
    var format: Format = .argv

    @Flag(name: .customLong("no-sandbox"), help: "Render as `run --no-sandbox` would start it.")
    var noSandbox = false

    func run() async throws {
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
        if !problems.isEmpty { throw DiagnosticError(problems) }
        printOut(outputs.joined(separator: "\n"))
    }
}
