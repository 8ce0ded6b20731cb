import InstanceContract
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import MachineCatalog
import QMP
import Sandbox
import TargetRuntime
import ControlAPI

/// How instance verbs name their instance.
struct InstanceOptions: ParsableArguments {
    @Argument(help: "The instance's name.")
    var name: String

    @Option(name: .shortAndLong, help: "Its namespace, when names repeat across namespaces.")
    var namespace: String?

    func locate() throws -> InstanceRecord {
        try InstanceLocator.find(name, namespace: namespace, environment: Environment.variables)
    }

    func qmp(timeout: Double = 10) throws -> QMPSocketClient {
        try QMPSocketClient(path: locate().layout.qmpSocket, timeout: timeout)
    }
}

struct Qmp: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one QMP command to an instance and print its result as JSON.",
        discussion: "JSON is a command object ('{\"execute\": \"query-status\"}') or just a command name ('query-status').")

    @OptionGroup var instance: InstanceOptions
    @Argument(help: "The command.") var command: String

    func run() throws {
        let object: JSONValue
        if let parsed = try? JSONValue.parse(Array(command.utf8)), case .object = parsed {
            object = parsed
        } else if command.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
            object = .object(["execute": .string(command)])
        } else {
            throw ValidationError("not a QMP command object or command name: \(command)")
        }
        printOut(try instance.qmp().execute(object).description)
    }
}

struct Hmp: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a human monitor command ('info registers') through QMP.")

    @OptionGroup var instance: InstanceOptions
    @Argument(help: "The HMP command line.") var command: String

    func run() throws {
        let r = try instance.qmp().execute(.object([
            "execute": .string("human-monitor-command"),
            "arguments": .object(["command-line": .string(command)]),
        ]))
        let text = r.stringValue ?? r.description
        if !text.isEmpty { printOut(text.trimmedTrailingNewlinesForOutput) }
    }
}

/// pause, resume and reset: one QMP command each.
struct SimpleQMPVerb {
    static func run(_ instance: InstanceOptions, _ command: String) throws {
        _ = try instance.qmp().execute(.object(["execute": .string(command)]))
    }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pause the guest's CPUs (QMP stop).")
    @OptionGroup var instance: InstanceOptions
    func run() throws { try SimpleQMPVerb.run(instance, "stop") }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Resume a paused guest (QMP cont).")
    @OptionGroup var instance: InstanceOptions
    func run() throws { try SimpleQMPVerb.run(instance, "cont") }
}

struct Reset: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reset the guest, as its reset button would (QMP system_reset).")
    @OptionGroup var instance: InstanceOptions
    func run() throws { try SimpleQMPVerb.run(instance, "system_reset") }
}

struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop an instance: system_powerdown where the board honours it, then quit, then SIGTERM, then SIGKILL.",
        discussion: """
            Each step is bounded; the whole stop takes at most --timeout plus 4 s.             A supervised instance (vtarget apply) is stopped through the supervisor and stays stopped,             whatever its restartPolicy, until vtarget start.
            """)

    @OptionGroup var instance: InstanceOptions

    @Option(help: "How long the guest gets to power down.")
    var timeout: String = "10s"

    func run() async throws {
        let located = Result { try instance.locate() }
        if (try? located.get())?.supervised == true || (try? located.get()) == nil, let client = await SupervisorConnection.existing() {
            let path = "/v1/instances/\(instance.namespace ?? (try? located.get())?.namespace ?? "default")/\(instance.name)/stop"
            do {
                let r: ObjectResult = try await client.send(.POST, path)
                return printOut("\(Table.qualified(r.kind))/\(r.name) \(r.action)")
            } catch where error.status == 404 {
                // Not the supervisor's: a `vtarget run` instance, or none.
            } catch { throw error.asCommandError }
        }
        let record = try located.get()
        let grace = Quantity.parseDuration(timeout) ?? 10
        if let qmp = try? QMPSocketClient(path: record.layout.qmpSocket, timeout: 2) {
            if record.powerdown, (try? qmp.execute(.object(["execute": .string("system_powerdown")]))) != nil {
                _ = qmp.waitForEvent("SHUTDOWN", timeout: grace)
            }
            _ = try? qmp.execute(.object(["execute": .string("quit")]), timeout: 2)
        }
        if waitGone(record, seconds: 2) { return }
        signal(record, SIGTERM)
        if waitGone(record, seconds: 2) { return }
        signal(record, SIGKILL)
        if !waitGone(record, seconds: 2) { throw RuntimeError("\(record.name): QEMU (pid \(record.qemuPID)) did not stop") }
    }

    private func waitGone(_ r: InstanceRecord, seconds: Double) -> Bool {
        for _ in 0..<Int(seconds * 50) {
            if !r.qemuAlive { return true }
            usleep(20_000)
        }
        return !r.qemuAlive
    }

    /// Only the QEMU the record names, through a pidfd checked against its start time.
    private func signal(_ r: InstanceRecord, _ sig: Int32) {
        _ = signalProcess(pid: r.qemuPID, startTime: r.qemuStartTime, currentStartTime: InstanceRecord.startTime(of:), signal: sig)
    }
}

extension String {
    var trimmedTrailingNewlinesForOutput: String {
        var s = Substring(self)
        while s.last == "\n" || s.last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
