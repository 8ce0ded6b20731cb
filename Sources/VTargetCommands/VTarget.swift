import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import DiskImages
import HostOS
import InstanceContract
import Sandbox
import TargetRuntime
import ControlAPI
import YAMLTree

public struct VTarget: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "vtarget",
        abstract: "Run virtual embedded targets and VMs from KubeTarget YAML, on one machine.",
        discussion: """
            Exit codes: 0 ok, 1 failure of the target or test, 2 bad input (YAML, flags).
            Sockets live in $XDG_RUNTIME_DIR/vtarget (else /tmp/vtarget-$UID), in directories of mode 0700 \
            (0711 as root, so QEMU, dropped to a uid of its own per instance, reaches its own directory; nobody can list them).
            """,
        version: "0.1.0",
        subcommands: [Run.self, Apply.self, Get.self, Describe.self, Delete.self, Events.self, Start.self, Stop.self,
                      Claim.self, Release.self, Logs.self, Wait.self, Console.self, Qmp.self, Hmp.self, Pause.self, Resume.self,
                      Reset.self, PortForward.self, SoftReboot.self, GuestOSInfo.self, VNC.self, SSH.self, SCP.self, GDB.self, Render.self, CRDs.self, Machines.self, Create.self, CAN.self, Doctor.self, Serve.self, Daemon.self,
                      ImageCommand.self, Diff.self, Sync.self,
                      Replay.self, BundleCommand.self,
                      SandboxExecCommand.self])

    public init() {}

    /// Parses, runs, and maps every error onto the contract's exit codes.
    public static func runMain(_ arguments: [String]) async -> Int32 {
        if arguments.first == StandbyAssignment.option { return await StandbyShim.serve() }
        do {
            if let request = fastRun(arguments) {
                try await request.execute()
                return 0
            }
            if let apply = fastApply(arguments) {
                try await apply.execute()
                return 0
            }
            if let bus = busHost(arguments) {
                return try await CANBusHost.serve(bus: bus.bus, namespace: bus.namespace, environment: Environment.variables)
            }
            if var direct = direct(arguments) {
                try await direct.run()
                return 0
            }
            var command = try parseAsRoot(CreateConfigMap.acceptingBareDryRun(arguments))
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            return exitCode(reporting: error)
        }
    }

    /// `run` of the common shape, parsed without ArgumentParser (`RunRequest.parse`).
    static func fastRun(_ arguments: [String]) -> RunRequest? {
        arguments.first == "run" ? RunRequest.parse(arguments.dropFirst()) : nil
    }

    /// `apply` of the common shape, parsed without ArgumentParser (`ApplyArguments.parse`).
    static func fastApply(_ arguments: [String]) -> ApplyArguments? {
        arguments.first == "apply" ? ApplyArguments.parse(arguments.dropFirst()) : nil
    }

    /// A bus's host exactly as `CANBusHost` starts it
    /// (`CANBusHost.hostArguments`), with no parser at all: it is on the way
    /// to Ready of every CAN target, and ArgumentParser's reflection over
    /// `CANServe` (~20 protocol-conformance scans of a binary holding 11,500
    /// conformances) made its start to serving 11.5 ms instead of 7.5.
    /// Any other shape goes through `direct`/the tree.
    static func busHost(_ arguments: [String]) -> (bus: String, namespace: String)? {
        guard arguments.count == 5, arguments == CANBusHost.hostArguments(bus: arguments[2], namespace: arguments[4]) else { return nil }
        let (bus, namespace) = (arguments[2], arguments[4])
        guard !bus.isEmpty, !bus.hasPrefix("-"), !namespace.isEmpty, !namespace.hasPrefix("-") else { return nil }
        return (bus, namespace)
    }

    /// The commands on the way to a running target, parsed alone when their
    /// arguments parse: `run` (a CI run, and every supervisor's shim), `can
    /// serve` (a bus's host), and the verbs scripts call most (`apply`,
    /// `wait`, `get`, `delete`). The whole tree of 54 commands initialises
    /// every command's configuration and metadata: ~65 KiB of pages each idle
    /// shim then keeps, and time before QEMU starts. What does not parse alone
    /// (`--help`, a mistake) goes through the tree, for its messages.
    /// Each names its super-command (`_superCommandName`, which only a root
    /// command's is read for): parsed as a root, a command without one is
    /// first searched for `--generate-completion-script` by two more parsers,
    /// ~1.4 ms of reflection that only the whole tree needs.
    static func direct(_ arguments: [String]) -> (any AsyncParsableCommand)? {
        func alone<C: AsyncParsableCommand>(_ command: C.Type, after words: Int) -> (any AsyncParsableCommand)? {
            try? C.parse(Array(arguments.dropFirst(words)))
        }
        // Literals, not each `configuration.commandName`: reading a command's
        // configuration builds all of it (`get`'s lists every kind).
        // DirectCommandTests keeps these equal to the names.
        switch arguments.first {
        case "run": return alone(Run.self, after: 1)
        case "apply": return alone(Apply.self, after: 1)
        case "wait": return alone(Wait.self, after: 1)
        case "get": return alone(Get.self, after: 1)
        case "delete": return alone(Delete.self, after: 1)
        case "can" where arguments.dropFirst().first == "serve": return alone(CANServe.self, after: 2)
        default: return nil
        }
    }

    /// Says on stderr what went wrong and returns the exit code: 2 only
    /// for bad input (YAML, flags, a `.badInput` runtime error).
    public static func exitCode(reporting error: any Error) -> Int32 {
        do {
            throw error
        } catch let e as DiagnosticError {
            printError(e.description)
            return ExitCode.badInput
        } catch let e as RuntimeError {
            printError("vtarget: " + e.description)
            return e.code == .badInput ? ExitCode.badInput : ExitCode.failure
        } catch let e as QemuImgError {
            printError("vtarget: \(e)")
            return ExitCode.failure
        } catch let e as SpawnError {
            printError("vtarget: \(e)")
            return ExitCode.failure
        } catch let e as SandboxError {
            printError("vtarget: sandbox: \(e) (the target is not started without its sandbox)")
            return ExitCode.failure
        } catch let e as ControlError {
            printError("vtarget: " + e.description)
            return e.status == 400 || e.status == 422 ? ExitCode.badInput : ExitCode.failure
        } catch let e as CommandExit {
            return e.code
        } catch {
            // ArgumentParser's own errors (usage, validation) are bad input;
            // --help and --version end with 0; an explicit exit code is kept;
            // anything else is a failure, not the user's fault.
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                print(message)
                return 0
            }
            if !message.isEmpty { printError(message) }
            if error is ArgumentParser.ExitCode { return code.rawValue }
            return code == .validationFailure ? ExitCode.badInput : ExitCode.failure
        }
    }
}

/// Ends a command with a specific exit code after it has said why.
struct CommandExit: Error {
    var code: Int32
}

func printError(_ s: String) {
    FileDescriptors.writeAll(2, Array((s.hasSuffix("\n") ? s : s + "\n").utf8))
}

func printOut(_ s: String, terminator: String = "\n") {
    FileDescriptors.writeAll(1, Array((s.hasSuffix("\n") || terminator.isEmpty ? s : s + terminator).utf8))
}
