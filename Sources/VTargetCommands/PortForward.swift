import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import QMP
import TargetRuntime

/// `vtarget port-forward NAME [tcp/|udp/]LOCAL[:GUEST]...`, as virtctl's:
/// a VM's guest port on the host's 127.0.0.1 until Ctrl-C.
///
/// QEMU's user-mode network adds the forward itself (HMP `hostfwd_add`), so
/// any guest port works, not only those the VM's `ports` list, and nothing
/// of vtarget sits in the data path. The forward goes when this command ends.
struct PortForward: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port-forward",
        abstract: "Forward local ports on 127.0.0.1 to a VM's guest ports until Ctrl-C.",
        discussion: """
            Each mapping is [tcp/|udp/]LOCAL[:GUEST]: GUEST defaults to LOCAL, LOCAL 0 picks a free port. \
            The VM's pod network (masquerade or bridge) carries it; --interface names which one when the VM has several.
            """)

    @OptionGroup var instance: InstanceOptions

    @Argument(help: "[tcp/|udp/]LOCAL[:GUEST], one or more.")
    var mappings: [String]

    @Option(help: "The VM interface (its name in the spec) whose network carries the forwards.")
    var interface: String?

    struct Mapping: Equatable {
        var proto: String
        var local: Int
        var guest: Int

        /// `[tcp/|udp/]LOCAL[:GUEST]`; nil when it is not that.
        static func parse(_ text: String) -> Mapping? {
            var rest = Substring(text)
            var proto = "tcp"
            if let slash = rest.firstIndex(of: "/") {
                proto = rest[..<slash].lowercased()
                rest = rest[rest.index(after: slash)...]
                guard proto == "tcp" || proto == "udp" else { return nil }
            }
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 1 || parts.count == 2, let local = Int(parts[0]), (0...65535).contains(local) else { return nil }
            let guest = parts.count == 2 ? Int(parts[1]) : local
            guard let guest, (1...65535).contains(guest), parts.count == 2 || local != 0 else { return nil }
            return Mapping(proto: proto, local: local, guest: guest)
        }
    }

    func validate() throws {
        for m in mappings where Mapping.parse(m) == nil {
            throw ValidationError("\(m): expected [tcp/|udp/]LOCAL[:GUEST] with ports 1-65535 (LOCAL 0 picks one, then GUEST is required)")
        }
        if let interface, interface.isEmpty || interface.contains(where: { !$0.isLetter && !$0.isNumber && $0 != "-" && $0 != "_" }) {
            throw ValidationError("--interface: expected an interface name as the spec writes it, got \"\(interface)\"")
        }
    }

    func run() async throws {
        var forwards: [Mapping] = []
        for text in mappings {
            var m = Mapping.parse(text)!
            if m.local == 0 { m.local = try LoopbackPort.free(udp: m.proto == "udp") }
            forwards.append(m)
        }
        let (stop, stopped) = AsyncStream<Void>.makeStream()
        let signals = SignalWatch([SIGINT, SIGTERM, SIGHUP]) { _ in stopped.yield() }
        defer { signals.cancel() }
        try await instance.withQMP { qmp in
            try await Self.withForwards(forwards, interface: interface, qmp: qmp) { m in
                printOut("Forwarding from 127.0.0.1:\(m.local) -> \(m.guest)\(m.proto == "udp" ? "/udp" : "")")
            } body: {
                for await _ in stop { break }
            }
        }
    }

    /// Adds each forward (QEMU's `hostfwd_add` on the VM's user-mode
    /// network), runs `body`, then removes them, also when `body` throws:
    /// `port-forward`, `ssh` and `scp` share it.
    static func withForwards<T>(_ forwards: [Mapping], interface: String?, qmp: QMPClient, added announce: (Mapping) -> Void = { _ in },
                                body: () async throws -> T) async throws -> T {
        let netdev = interface.map { "net-" + $0 + " " } ?? ""
        var added: [Mapping] = []
        do {
            for m in forwards {
                let said = try await qmp.hmp("hostfwd_add \(netdev)\(m.proto):127.0.0.1:\(m.local)-:\(m.guest)")
                guard said.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                    throw RuntimeError("cannot forward 127.0.0.1:\(m.local) to guest port \(m.guest): "
                        + said.trimmingCharacters(in: .whitespacesAndNewlines)
                        + (interface == nil ? " (is this a VM with a pod network? --interface names one)" : ""), code: .io)
                }
                added.append(m)
                announce(m)
            }
            let result = try await body()
            await remove(added, qmp: qmp, netdev: netdev)
            return result
        } catch {
            await remove(added, qmp: qmp, netdev: netdev)
            throw error
        }
    }

    private static func remove(_ forwards: [Mapping], qmp: QMPClient, netdev: String) async {
        for m in forwards { _ = try? await qmp.hmp("hostfwd_remove \(netdev)\(m.proto):127.0.0.1:\(m.local)") }
    }
}
