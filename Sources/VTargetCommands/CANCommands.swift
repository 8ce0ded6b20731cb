import ArgumentParser
import CANProtocol
#if canImport(Glibc)
import Glibc
#endif
import MachineCatalog
import HostOS
import TargetRuntime

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
        commandName: "serve", abstract: "Host a CAN bus in the foreground (targets start one themselves).", shouldDisplay: false)

    @OptionGroup var target: BusOptions

    func run() async throws {
        let code = try await CANBusHost.serve(bus: target.bus, namespace: target.namespace, environment: Environment.variables)
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
            let rc = poll(&pfd, 1, timeout.map { Int32($0 * 1000) } ?? -1)
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

    func run() throws {
        var connection = try BusConnection(target)
        defer { close(connection.fd) }
        let end = timeout.flatMap(Quantity.parseDuration).map { monotonicSeconds() + $0 }
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
        discussion: "Members are named INSTANCE/DEVICE (targets) or socketcand-N (clients). Prints each member's counters.")

    @OptionGroup var target: BusOptions
    @Option(help: "Only frames from this member (default: the whole bus).") var member: String?
    @Option(help: "Share of frames dropped, 0 to 1.") var drop: Double?
    @Option(help: "Delay added to every frame (5ms, 1s).") var delay: String?
    @Option(help: "Share of frames with one bit flipped, 0 to 1.") var corrupt: Double?
    @Flag(name: .customLong("bus-off"), help: "Take the member (or bus) off the bus.") var busOff = false
    @Flag(name: .customLong("bus-on"), help: "Put it back.") var busOn = false

    func validate() throws {
        for (name, v) in [("--drop", drop), ("--corrupt", corrupt)] where v.map({ !(0...1).contains($0) }) ?? false {
            throw ValidationError("\(name) takes a share from 0 to 1")
        }
        if let delay, Quantity.parseDuration(delay) == nil, delay != "0" { throw ValidationError("--delay: expected \(Quantity.durationHint)") }
        if busOff && busOn { throw ValidationError("--bus-off and --bus-on exclude each other") }
    }

    func run() throws {
        var settings: [String] = []
        if let member { settings.append("member=\(member)") }
        if let drop { settings.append("drop=\(drop)") }
        if let delay { settings.append("delay=\(Int((Quantity.parseDuration(delay) ?? 0) * 1000))") }
        if let corrupt { settings.append("corrupt=\(corrupt)") }
        if busOff { settings.append("busoff=1") }
        if busOn { settings.append("busoff=0") }
        var connection = try BusConnection(target)
        defer { close(connection.fd) }
        try connection.send(Array(("< vtarget-fault " + settings.joined(separator: " ") + " >").utf8))
        let end = monotonicSeconds() + 5
        while monotonicSeconds() < end, let reply = try connection.next(timeout: end - monotonicSeconds()) {
            let text = String(decoding: reply, as: UTF8.self)
            guard text.hasPrefix("< ok") else { continue }
            for part in text.dropFirst(4).dropLast(2).split(separator: " ") { printOut(String(part)) }
            return
        }
        throw RuntimeError("the bus did not answer", code: .timeout)
    }
}
