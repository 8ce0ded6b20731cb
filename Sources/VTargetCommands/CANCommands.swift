import ArgumentParser
import CANProtocol
#if canImport(Glibc)
import Glibc
#endif
import MachineCatalog
import HostOS
import InstanceContract
import TargetRuntime
import YAMLTree

struct CAN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "can",
        abstract: "Watch, feed and disturb a CAN bus of a running target.",
        subcommands: [CANDump.self, CANSend.self, CANFault.self, CANServe.self])
}

/// Which bus: its name, and the namespace of the targets on it.
struct BusOptions: ParsableArguments {
    @Argument(help: "The bus name.") var bus: String
    @Option(name: .shortAndLong, help: "The namespace of the targets on the bus.")
    var namespace = "default"
}

/// The bus host, started by the first target that needs the bus; it ends
/// when the last target leaves. In a terminal it shows why a bus fails to start.
struct CANServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        _superCommandName: "vtarget can",
        abstract: "Host a CAN bus in the foreground: targets on this machine start one themselves; --listen serves one for targets elsewhere (a cluster's CAN bus Deployment).")

    @OptionGroup var target: BusOptions

    @Option(help: ArgumentHelp(
        "Serve the bus on this address (HOST:PORT, e.g. 0.0.0.0:\(CANBusHost.socketcandPort) in a Pod) for targets elsewhere, until a signal.",
        discussion: "Targets join it when their environment names it: VTARGET_REMOTE_CAN=BUS=HOST:PORT[,...]."))
    var listen: String?

    func validate() throws {
        if let listen {
            do { _ = try CANBusHost.parseAddress(listen) } catch { throw ValidationError("--listen: \(error)") }
        }
    }

    func run() async throws {
        let env = Environment.variables
        let code: Int32
        if let listen {
            code = try await CANBusHost.serveNetwork(bus: target.bus, namespace: target.namespace, listen: try CANBusHost.parseAddress(listen), environment: env) { printError("vtarget: " + $0) }
        } else {
            code = try await CANBusHost.serve(bus: target.bus, namespace: target.namespace, environment: env)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

/// A socketcand client on a bus's unix socket, in raw mode.
struct BusConnection {
    let fd: Int32
    /// Replies to vtarget's own commands carry every member's counters.
    var splitter = Socketcand.MessageSplitter(maxMessage: 1 << 16)
    var pending: [[UInt8]] = []

    init(_ target: BusOptions) throws {
        let record = try BusRecord.find(target.bus, namespace: target.namespace, environment: Environment.variables)
        fd = try FileDescriptors.connectUnix(record.socket)
        _ = try next(timeout: 5)  // < hi >
        try send(Array("< open \(target.bus) >".utf8))
        _ = try next(timeout: 5)
        try send(Array("< rawmode >".utf8))
        _ = try next(timeout: 5)
    }

    func send(_ bytes: [UInt8]) throws {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n != bytes.count { throw RuntimeError("the bus closed the connection") }
    }

    /// The next message, or nil when `timeout` (seconds) passes first.
    mutating func next(timeout: Double?) throws -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: 65536)
        while pending.isEmpty {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            // Bounded: Int32(_:) traps on milliseconds past 2³¹ (25 days); poll again instead.
            let rc = poll(&pfd, 1, timeout.map { Int32(min(max($0, 0), 86_400) * 1000) } ?? -1)
            if rc == 0, let timeout, timeout > 86_400 { return try next(timeout: timeout - 86_400) }
            if rc == 0 { return nil }
            if rc < 0 { if errno == EINTR { continue }; throw RuntimeError("poll: \(String(cString: strerror(errno)))") }
            let n = read(fd, &buf, buf.count)
            if n <= 0 { throw RuntimeError("the bus went away") }
            pending += splitter.append(buf[0..<n])
        }
        return pending.removeFirst()
    }
}

struct CANDump: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print every frame on a bus, in candump's format, until Ctrl-C (every frame is also in the bus directory's candump.log, bus-BUS under the runtime directory).")

    @OptionGroup var target: BusOptions
    @Option(name: .shortAndLong, help: "Stop after this many frames.") var count: Int?
    @Option(help: "Stop after this long.") var timeout: String?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count: expected 1 or more frames, got \(count)") }
        if let timeout { _ = try durationOption("--timeout", timeout) }
    }

    func run() throws {
        var connection = try BusConnection(target)
        defer { close(connection.fd) }
        let end = try timeout.map { monotonicSeconds() + (try durationOption("--timeout", $0)) }
        var seen = 0
        while count.map({ seen < $0 }) ?? true {
            let left = end.map { $0 - monotonicSeconds() }
            if let left, left <= 0 { return }
            guard let message = try connection.next(timeout: left) else { return }
            guard let frame = Socketcand.parseFrame(message) else { continue }
            printOut(CANText.candump(frame, bus: target.bus))
            seen += 1
        }
    }
}

struct CANSend: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send one frame to a bus, in cansend's syntax: 123#DEADBEEF, 12345678#00 (extended).")

    @OptionGroup var target: BusOptions
    @Argument(help: "ID#DATA") var frame: String

    func validate() throws {
        do { _ = try CANText.parseCansend(frame) } catch { throw ValidationError("\(frame): \(error)") }
    }

    func run() throws {
        let f = try CANText.parseCansend(frame)
        if f.remote { throw ValidationError("socketcand raw mode carries no remote frames; send RTR from a target") }
        let connection = try BusConnection(target)
        defer { close(connection.fd) }
        try connection.send(Socketcand.sendMessage(f))
    }
}

struct CANFault: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault",
        abstract: "Inject faults on a bus, or on frames from one member: drop rate, delay, corruption, bus-off.",
        discussion: """
            Members are named INSTANCE/DEVICE (targets) or socketcand-N (clients); --member must name one on the bus. \
            Settings not given keep their values; --delay 0s removes a delay, --drop 0 stops dropping. \
            Prints what this call set, then each member's counters. With no setting it only prints the counters.
            """)

    @OptionGroup var target: BusOptions
    @Option(help: "Only frames from this member (default: the whole bus).") var member: String?
    @Option(help: "Share of frames dropped, 0 to 1.") var drop: Double?
    @Option(help: "Delay added to every frame (5ms, 1s; 0s removes it).") var delay: String?
    @Option(help: "Share of frames with one bit flipped, 0 to 1.") var corrupt: Double?
    @Flag(name: .customLong("bus-off"), help: "Take the member (or bus) off the bus.") var busOff = false
    @Flag(name: .customLong("bus-on"), help: "Put it back.") var busOn = false

    func validate() throws {
        for (name, v) in [("--drop", drop), ("--corrupt", corrupt)] where v.map({ !(0...1).contains($0) }) ?? false {
            throw ValidationError("\(name) takes a share from 0 to 1")
        }
        if let delay { _ = try durationOption("--delay", delay, allowZero: true) }
        if busOff && busOn { throw ValidationError("--bus-off and --bus-on exclude each other") }
    }

    /// What this call changes, as `vtarget-fault` settings and as shown to the user.
    func changes() throws -> [(setting: String, shown: String)] {
        var out: [(String, String)] = []
        if let drop { out.append(("drop=\(drop)", "drop=\(drop)")) }
        if let delay {
            let ms = Int((try durationOption("--delay", delay, allowZero: true) * 1000).rounded())
            out.append(("delay=\(ms)", "delay=\(ms)ms"))
        }
        if let corrupt { out.append(("corrupt=\(corrupt)", "corrupt=\(corrupt)")) }
        if busOff { out.append(("busoff=1", "bus-off")) }
        if busOn { out.append(("busoff=0", "bus-on")) }
        return out
    }

    func run() throws {
        let changes = try changes()
        var connection = try BusConnection(target)
        defer { close(connection.fd) }
        if let member {
            // The bus takes faults for any name, so a typo would silently do nothing: ask who is on it first.
            var members = try exchange(&connection, []).compactMap { c in c.range(of: ":sent=").map { String(c[..<$0.lowerBound]) } }
            // The last to join is this very connection, no member to suggest.
            if members.last?.hasPrefix("socketcand-") == true { members.removeLast() }
            // Sorted: members join concurrently, so the bus's own order says nothing.
            members.sort()
            guard members.contains(member) else {
                printError("error: --member: no member \"\(member)\" on bus \(target.bus); "
                    + (members.isEmpty ? "the bus has no members" : Suggestion.hint(member, in: members)))
                throw CommandExit(code: ExitCode.badInput)
            }
        }
        let reply = try exchange(&connection, (member.map { ["member=\($0)"] } ?? []) + changes.map(\.setting))
        if !changes.isEmpty {
            printOut((member.map { "member \($0)" } ?? "bus \(target.bus)") + ": " + changes.map(\.shown).joined(separator: " ")
                     + " (settings not given keep their values)")
        }
        let faults = reply.filter { $0.hasPrefix(Self.faultsPrefix) }
        for c in reply where !c.hasPrefix(Self.faultsPrefix) { printOut(c) }
        printOut(faults.isEmpty ? "active faults: none" : "active faults:")
        for f in faults { printOut("  " + Self.shown(fault: f.dropFirst(Self.faultsPrefix.count))) }
    }

    static let faultsPrefix = "faults@"

    /// `bus:drop=0.5,delay=20,busoff` (the bus host's words) as `bus: drop=0.5 delay=20ms bus-off`.
    static func shown(fault: Substring) -> String {
        guard let colon = fault.lastIndex(of: ":") else { return String(fault) }
        let settings = fault[fault.index(after: colon)...].split(separator: ",").map { s -> String in
            if s == "busoff" { return "bus-off" }
            if s.hasPrefix("delay=") { return s + "ms" }
            return String(s)
        }
        return String(fault[..<colon]) + ": " + settings.joined(separator: " ")
    }

    /// Sends one `vtarget-fault` message; the bus answers every member's counters.
    func exchange(_ connection: inout BusConnection, _ settings: [String]) throws -> [String] {
        try connection.send(Array(("< vtarget-fault " + settings.joined(separator: " ") + " >").utf8))
        let end = monotonicSeconds() + 5
        while monotonicSeconds() < end, let reply = try connection.next(timeout: end - monotonicSeconds()) {
            let text = String(decoding: reply, as: UTF8.self)
            guard text.hasPrefix("< ok") else { continue }
            return text.dropFirst(4).dropLast(2).split(separator: " ").map(String.init)
        }
        throw RuntimeError("the bus did not answer", code: .timeout)
    }
}
