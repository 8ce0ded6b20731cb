import InstanceContract
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import MachineCatalog
import HostOS
import TargetRuntime
import SessionCore
import ControlAPI
import Dispatch
import Foundation
import Synchronization

/// The device a verb means: the one named, else the instance's first UART.
func serialDevice(_ record: InstanceRecord, _ device: String?) throws -> String {
    if let device {
        guard record.serialDevices.contains(device) else {
            throw ValidationError("\(record.name) has no serial device \"\(device)\"; it has " + record.serialDevices.joined(separator: ", "))
        }
        return device
    }
    guard let first = record.serialDevices.first else { throw RuntimeError("\(record.name) has no serial device", code: .notFound) }
    return first
}

func writeOut(_ bytes: [UInt8]) { FileDescriptors.writeAll(1, bytes) }

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print an instance's serial output, from its always-on log (rotated files included).",
        discussion: "Logs rotate at 8 MiB, three old files kept (VTARGET_LOG_MAX_BYTES, VTARGET_LOG_FILES for a run).")

    @OptionGroup var instance: InstanceOptions
    @Option(help: "The serial device (default: the first).") var device: String?
    @Flag(name: .shortAndLong, help: "Keep printing new output until the instance ends.") var follow = false
    @Flag(help: "Each line with its wall-clock (UTC) and monotonic time.") var timestamps = false
    @Option(help: "A sidecar's output instead of a serial device's.") var sidecar: String?
    @Flag(help: "The run before the last one that ended (a restarted instance's earlier run).") var previous = false

    func run() throws {
        let (record, live) = try located()
        let path: String
        if let sidecar {
            path = record.layout.sidecarLog(sidecar)
            guard access(path, F_OK) == 0 else { throw RuntimeError("\(record.name) has no sidecar \"\(sidecar)\" (or it has not started)", code: .notFound) }
        } else {
            path = record.layout.logDirectory + "/\(try serialDevice(record, device))." + (timestamps ? "log" : "raw")
        }
        var follower = LogFollower(path: path, fromStart: true)
        writeOut(follower.read())
        guard follow, live else { return }
        while kill(record.ownerPID, 0) == 0, access(record.directory, F_OK) == 0 {
            let bytes = follower.read()
            if bytes.isEmpty { usleep(50_000) } else { writeOut(bytes) }
        }
        writeOut(follower.read())
    }
}

extension Logs {
    /// The running instance; else the last run of it that ended (its logs are
    /// kept in its state directory until it is deleted, or, for `vtarget run`,
    /// until the next run of that name ends), said on stderr. False: not live.
    func located() throws -> (InstanceRecord, Bool) {
        let env = Environment.variables
        if !previous {
            do { return (try instance.locate(), true) } catch let error as RuntimeError where error.code == .notFound {
                guard let kept = FinishedRun.find(instance.name, namespace: instance.namespace, environment: env) else {
                    throw RuntimeError(error.message + "; nor has an instance of that name ended with its logs kept (a deleted instance's go with it)",
                                       code: .notFound)
                }
                return (ended(kept), false)
            }
        }
        guard let kept = FinishedRun.find(instance.name, namespace: instance.namespace, previous: true, environment: env) else {
            throw RuntimeError("\(instance.name) has no earlier run whose logs are kept (only the last two runs that ended are)", code: .notFound)
        }
        return (ended(kept), false)
    }

    private func ended(_ kept: InstanceRecord) -> InstanceRecord {
        printError("vtarget: \(kept.name) (ended at \(kept.finishedAt.map(Table.timestamp) ?? "an unknown time")"
                   + (previous ? ", the run before the last" : "") + "): its kept logs")
        return kept
    }
}

struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        _superCommandName: "vtarget",
        abstract: "Wait until an instance is Ready, or its serial output matches a regular expression.",
        discussion: "--for serial=REGEX matches output that arrives after the call; with --since-start, all output. Exit 0 when met, 1 on timeout.")

    @OptionGroup var instance: InstanceOptions
    @Option(name: .customLong("for"), help: "condition=Ready or serial=REGEX.") var condition: String
    @Option(help: "Give up after this long.") var timeout: String = "30s"
    @Option(help: "The serial device (default: the first).") var device: String?
    @Flag(help: "Match all output since the instance started, not only what comes after this call.") var sinceStart = false

    func validate() throws {
        if Quantity.parseDuration(timeout) == nil { throw ValidationError("--timeout: expected \(Quantity.durationHint), got \(timeout)") }
        if condition.hasPrefix("serial=") {
            if (try? Regex(String(condition.dropFirst(7)))) == nil { throw ValidationError("--for serial=: not a valid regular expression") }
        } else if condition != "condition=Ready" {
            throw ValidationError("--for takes condition=Ready or serial=REGEX, got \(condition)")
        }
    }

    func run() async throws {
        // A supervised instance: the supervisor's events say when, and a failure ends the wait at once.
        if condition == "condition=Ready", let client = await SupervisorConnection.existing() {
            let (ns, name) = (instance.namespace ?? "default", instance.name)
            if (try? await client.get("/v1/instances/\(ns)/\(name)", as: InstanceDescription.self)) != nil {
                var outcome = try await ReadyWait(client: client, query: "namespace=" + ns, chooses: { $0.namespace == ns && $0.name == name })
                    .run(seconds: Quantity.parseDuration(timeout)!)
                if case .ready(let found) = outcome, found.isEmpty { outcome = .failed([.init(name: name, why: "deleted while waiting")]) }
                let code = ReadyWait.report(outcome, timeout: timeout)
                if code != 0 { throw CommandExit(code: code) }
                return
            }
        }
        try waitLocally()
    }

    /// An instance of a `vtarget run` (or one the supervisor does not know yet): its record says.
    private func waitLocally() throws {
        let end = monotonicSeconds() + Quantity.parseDuration(timeout)!
        // The instance may still be starting: keep looking until the deadline.
        var found: InstanceRecord?
        while found == nil {
            do {
                found = try instance.locate()
            } catch {
                guard monotonicSeconds() < end else { throw error }
                usleep(5_000)
            }
        }
        var record = found!
        if condition == "condition=Ready" {
            // Woken by the record's rewrite (it is renamed into place), not by polling.
            let watch = inotify_init1(Int32(IN_CLOEXEC))
            defer { if watch >= 0 { close(watch) } }
            if watch >= 0 { inotify_add_watch(watch, record.directory, UInt32(IN_MOVED_TO)) }
            record = try instance.locate()  // it may have changed before the watch began
            while !record.ready {
                let left = end - monotonicSeconds()
                guard left > 0 else { throw failure("not Ready within \(timeout)") }
                if watch >= 0 {
                    var pfd = pollfd(fd: watch, events: Int16(POLLIN), revents: 0)
                    // Bounded, so an instance that ends (its record gone) is noticed too.
                    if poll(&pfd, 1, Int32(min(left, 0.2) * 1000)) > 0 {
                        var events = [UInt8](repeating: 0, count: 4096)
                        _ = read(watch, &events, events.count)
                    }
                } else {
                    usleep(20_000)
                }
                record = try instance.locate()
            }
            return
        }
        let dev = try serialDevice(record, device)
        var follower = LogFollower(path: record.layout.logDirectory + "/\(dev).raw", fromStart: sinceStart)
        // Lines, as --until and readiness match them (SessionCore's MatchWindows).
        var lines = MatchWindows()
        let pattern = String(condition.dropFirst(7))
        while monotonicSeconds() < end {
            let bytes = follower.read()
            if bytes.isEmpty {
                guard kill(record.ownerPID, 0) == 0 else { throw failure("the instance ended") }
                usleep(10_000)
                continue
            }
            let text = lines.append(key: dev, bytes)
            // Backtracking can take minutes ((a+)+ on a long near-match): bounded by what is left of --timeout.
            switch Self.bounded(seconds: end - monotonicSeconds(), { (try? Regex(pattern)).map { text.contain($0, pattern: pattern) } ?? false }) {
            case true?: return
            case false?: continue
            case nil: throw failure("matching /\(pattern)/ did not finish within \(timeout): a pattern with nested quantifiers, such as (a+)+, backtracks for minutes; write it without them")
            }
        }
        throw failure("no match for /\(condition.dropFirst(7))/ on \(dev) within \(timeout)")
    }

    /// `match` on a thread of its own; nil when it has not finished within
    /// `seconds` (it is abandoned, and ends with this process).
    static func bounded(seconds: Double, _ match: @escaping @Sendable () -> Bool) -> Bool? {
        final class Answer: Sendable {
            let value = Mutex<Bool?>(nil)
            let done = DispatchSemaphore(value: 0)
        }
        let answer = Answer()
        Thread.detachNewThread {
            let r = match()
            answer.value.withLock { $0 = r }
            answer.done.signal()
        }
        guard answer.done.wait(timeout: .now() + max(0, seconds)) == .success else { return nil }
        return answer.value.withLock { $0 }
    }

    private func failure(_ why: String) -> CommandExit {
        printError("vtarget: \(instance.name): \(why)")
        return CommandExit(code: 1)
    }
}

struct Console: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Attach this terminal to an instance's serial port, raw; Ctrl-] detaches.",
        discussion: "One client writes at a time: the first to type holds the port. --force takes it over; --read-only never writes.")

    @OptionGroup var instance: InstanceOptions
    @Argument(help: "The serial device (default: the first).") var device: String?
    @Flag(help: "Only watch; keystrokes other than Ctrl-] are not sent.") var readOnly = false
    @Flag(help: "Take write access from the client that holds it.") var force = false

    func run() throws {
        let record = try instance.locate()
        let dev = try serialDevice(record, device)
        let fd = try FileDescriptors.connectUnix(force ? record.layout.forceSocket(dev) : record.layout.serialSocket(dev))
        defer { close(fd) }
        let tty = isatty(0) == 1
        var saved = termios()
        if tty {
            tcgetattr(0, &saved)
            var raw = saved
            cfmakeraw(&raw)
            tcsetattr(0, TCSANOW, &raw)
            printError("vtarget: attached to \(record.name)/\(dev)" + (readOnly ? " (read-only)" : "") + "; Ctrl-] detaches\r")
        }
        defer {
            if tty {
                tcsetattr(0, TCSANOW, &saved)
                printError("\nvtarget: detached")
            }
        }
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: 0, events: Int16(POLLIN), revents: 0)]
        var buf = [UInt8](repeating: 0, count: 65536)
        var stdinOpen = true
        while true {
            if poll(&fds, stdinOpen ? 2 : 1, -1) < 0 { if errno == EINTR { continue }; return }
            if fds[0].revents != 0 {
                let n = read(fd, &buf, buf.count)
                if n <= 0 { printError("\r\nvtarget: the instance closed the port\r"); return }
                writeOut(Array(buf[0..<n]))
            }
            if stdinOpen, fds[1].revents != 0 {
                let n = read(0, &buf, buf.count)
                if n <= 0 { stdinOpen = false; continue }
                var chunk = Array(buf[0..<n])
                if let detach = chunk.firstIndex(of: 0x1D) {
                    chunk = Array(chunk[..<detach])
                    if !readOnly, !chunk.isEmpty { _ = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
                    return
                }
                if !readOnly { _ = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
            }
        }
    }
}

