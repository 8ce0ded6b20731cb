import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import HostOS
import InstanceContract
import QMP
import Sandbox
import TargetRuntime

/// What a VM's verbs need of its running instance: its record, QEMU's own
/// directory (the agent's and the display's sockets are there) and the name
/// KubeVirt would print for it.
struct RunningVM {
    var record: InstanceRecord
    var qemuDirectory: String
    /// `virtualmachine.kubevirt.io/NAME` (or the VMI's, a Viti Machine's).
    var qualifiedName: String

    var guestAgentSocket: String { qemuDirectory + "/qga.sock" }
    var vncSocket: String { qemuDirectory + "/vnc.sock" }

    /// The VM's instance; a board instance, or a VM that is not running, is an error that says so.
    static func locate(_ options: InstanceOptions) async throws -> RunningVM {
        let record = try options.locate()
        guard let dir = record.qemuDirectory, FileManager.default.fileExists(atPath: dir + "/qga.sock") else {
            throw RuntimeError("\(record.name) is not a VM (a board instance has no guest agent or display); "
                + "these verbs are for VirtualMachines, VirtualMachineInstances and Machines", code: .badInput)
        }
        return RunningVM(record: record, qemuDirectory: dir, qualifiedName: await VMNames.qualified(record))
    }

    /// A short session with the guest agent.
    func withAgent<T>(timeout: Double = 3, _ body: (GuestAgent) throws -> T) throws -> T {
        let agent: GuestAgent
        do { agent = try GuestAgent(path: guestAgentSocket, timeout: timeout) } catch {
            throw RuntimeError("\(qualifiedName): \(error.message)", code: error.code)
        }
        defer { agent.close() }
        return try body(agent)
    }
}

/// The kubectl-style name verbs print for an instance: a VM's kind when it
/// is one (the supervisor knows which kind made it), else the board's.
enum VMNames {
    static func qualified(_ record: InstanceRecord) async -> String {
        if record.supervised == true, let client = await SupervisorConnection.existing(),
           let d = try? await client.get("/v1/instances/\(record.namespace)/\(record.name)", as: InstanceDescription.self),
           let slash = d.instance.target.firstIndex(of: "/") {
            return Table.qualified(String(d.instance.target[..<slash])) + "/" + record.name
        }
        let isVM = record.qemuDirectory.map { FileManager.default.fileExists(atPath: $0 + "/qga.sock") } ?? false
        return Table.qualified(isVM ? "VirtualMachine" : "VirtualTargetInstance") + "/" + record.name
    }
}

struct SoftReboot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soft-reboot",
        abstract: "Reboot a VM's guest OS, as virtctl soft-reboot: through its qemu-guest-agent, else with the ACPI power button.",
        discussion: """
            With no agent answering, the power button is pressed and QEMU is told to pause, not exit, when the guest \
            powers off; vtarget then resets it and lets it boot again (libvirt's ACPI reboot). The instance stays the same \
            one throughout. A stop while the guest is still powering off cancels the reboot. vtarget reset resets the \
            machine without the guest's help.
            """)
    @OptionGroup var instance: InstanceOptions

    func run() async throws {
        let vm = try await RunningVM.locate(instance)
        do {
            try vm.withAgent(timeout: 2) { try $0.executeUnanswered("guest-shutdown", arguments: .object(["mode": .string("reboot")])) }
            printOut("\(vm.qualifiedName) soft-rebooted (guest agent)")
        } catch let error as RuntimeError where error.code == .notFound {
            _ = try await instance.withQMP { try await $0.execute(ACPIReboot.command, timeout: 10) }
            printOut("\(vm.qualifiedName) soft-rebooted (ACPI power button)")
        }
    }
}

struct GuestOSInfo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guestosinfo",
        abstract: "What the VM's qemu-guest-agent says of the guest, as JSON in KubeVirt's guestosinfo shape.")
    @OptionGroup var instance: InstanceOptions

    func run() async throws {
        let vm = try await RunningVM.locate(instance)
        let info = try vm.withAgent { agent in
            let os = try agent.execute("guest-get-osinfo")
            let version = (try? agent.execute("guest-info"))?["version"]
            let host = (try? agent.execute("guest-get-host-name"))?["host-name"]
            let zone = try? agent.execute("guest-get-timezone")
            return GuestOSInfo.kubeVirtShape(os: os, agentVersion: version, hostname: host, timezone: zone)
        }
        printOut(info.description)
    }

    /// KubeVirt's VirtualMachineInstanceGuestAgentInfo fields from the agent's answers.
    static func kubeVirtShape(os: JSONValue, agentVersion: JSONValue?, hostname: JSONValue?, timezone: JSONValue?) -> JSONValue {
        var o: [String: JSONValue] = [:]
        for (theirs, ours) in [("name", "name"), ("kernel-release", "kernelRelease"), ("version", "version"), ("pretty-name", "prettyName"),
                               ("version-id", "versionId"), ("kernel-version", "kernelVersion"), ("machine", "machine"), ("id", "id")] {
            if let v = os[theirs] { o[ours] = v }
        }
        var out: [String: JSONValue] = ["os": .object(o)]
        if let agentVersion { out["guestAgentVersion"] = agentVersion }
        if let hostname { out["hostname"] = hostname }
        if let zone = timezone?["zone"]?.stringValue {
            let offset = timezone?["offset"].map { $0.description } ?? "0"
            out["timezone"] = .string(zone + ", " + offset)
        }
        return .object(out)
    }
}

struct VNC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vnc",
        abstract: "A VM's display: its VNC unix socket, a proxy on 127.0.0.1 (--proxy-only), or a PNG (--screenshot).",
        discussion: """
            Without options, prints the unix socket (vncviewer and remmina open it as a path). \
            --proxy-only serves it on 127.0.0.1:--port (0: a free port) until Ctrl-C and prints {"port": N}, as virtctl does. \
            --screenshot F.png writes what the display shows now.
            """)
    @OptionGroup var instance: InstanceOptions
    @Flag(help: "Serve the display on 127.0.0.1 for a VNC client of your own, until Ctrl-C.") var proxyOnly = false
    @Option(help: "The local port of --proxy-only (0: a free one).") var port: Int = 0
    @Option(help: "Write the display as a PNG to this file, and exit.") var screenshot: String?

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port: expected 0-65535, got \(port)") }
        if proxyOnly && screenshot != nil { throw ValidationError("give --proxy-only or --screenshot, not both") }
        if port != 0 && !proxyOnly { throw ValidationError("--port is for --proxy-only") }
        if let screenshot, screenshot.isEmpty { throw ValidationError("--screenshot: expected a file name") }
    }

    func run() async throws {
        let vm = try await RunningVM.locate(instance)
        guard FileManager.default.fileExists(atPath: vm.vncSocket) else {
            throw RuntimeError("\(vm.qualifiedName) has no display (autoattachGraphicsDevice: false)", code: .notFound)
        }
        if let screenshot { return try await Self.screenshot(vm, instance, to: screenshot) }
        guard proxyOnly else { return printOut(vm.vncSocket) }
        try await proxy(vm)
    }

    /// QMP `screendump` as PNG (QEMU 7.1+) into QEMU's own directory, the
    /// one place its sandbox lets it write; copied out, then removed.
    static func screenshot(_ vm: RunningVM, _ instance: InstanceOptions, to file: String) async throws {
        let inside = vm.qemuDirectory + "/vt-screendump-\(getpid()).png"
        defer { unlink(inside) }
        _ = try await instance.withQMP {
            try await $0.execute("screendump", arguments: .object(["filename": .string(inside), "format": .string("png")]), timeout: 20)
        }
        guard let data = FileManager.default.contents(atPath: inside), !data.isEmpty else {
            throw RuntimeError("\(vm.qualifiedName): QEMU wrote no screendump", code: .io)
        }
        do { try data.write(to: URL(fileURLWithPath: file)) } catch {
            throw RuntimeError("cannot write \(file): \(error)", code: .io, cause: error)
        }
        printOut("\(vm.qualifiedName): screenshot written to \(file) (\(data.count) bytes)")
    }

    /// socat listens on 127.0.0.1 and joins each client to the unix socket;
    /// it is this command's child and ends with it.
    private func proxy(_ vm: RunningVM) async throws {
        guard let socat = ExecutableSearch.find("socat", environment: Environment.variables) else {
            throw RuntimeError("socat not found in PATH (make setup installs it)", code: .notFound)
        }
        let local = port == 0 ? try LoopbackPort.free(udp: false) : port
        let child = try await ChildProcess.spawn(SpawnRequest(
            executable: socat, arguments: ["TCP-LISTEN:\(local),bind=127.0.0.1,reuseaddr,fork", "UNIX-CONNECT:" + vm.vncSocket],
            environment: Environment.variables.map { "\($0.key)=\($0.value)" }, fds: [-1, -1, 2], newSession: true, parentDeathSignal: SIGTERM))
        let (stop, stopped) = AsyncStream<Void>.makeStream()
        let signals = SignalWatch([SIGINT, SIGTERM, SIGHUP]) { _ in stopped.yield() }
        defer { signals.cancel() }
        printOut("{\"port\":\(local)}")
        let exited = Task { _ = await child.waitForExit(); stopped.yield() }
        for await _ in stop { break }
        exited.cancel()
        _ = await child.terminateGroup(grace: 2)
    }
}

/// `vtarget ssh` and `scp`: the user's OpenSSH, through a forward of the
/// VM's SSH port on a free 127.0.0.1 port that lives as long as the command
/// (the same forward `port-forward` makes).
struct GuestSSH {
    var name: String
    var namespace: String?
    var identityFile: String?
    var guestPort: Int
    var localOptions: [String]

    /// `[USER@]NAME`, virtctl's `vm/NAME` and `vmi/NAME` too; nil when it is not that.
    static func parseTarget(_ text: String) -> (user: String?, name: String)? {
        var rest = Substring(text)
        var user: String?
        if let at = rest.lastIndex(of: "@") {
            user = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
            if user!.isEmpty { return nil }
        }
        for prefix in ["vm/", "vmi/", "virtualmachine/", "virtualmachineinstance/"] where rest.hasPrefix(prefix) {
            rest = rest.dropFirst(prefix.count)
            break
        }
        guard !rest.isEmpty, rest.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" }) else { return nil }
        return (user, String(rest))
    }

    /// The options before the destination: the port, the key, and no host
    /// key bookkeeping for a VM's changing keys unless the user says otherwise.
    func sshOptions(port: Int, portFlag: String) -> [String] {
        var out = [portFlag, "\(port)"]
        let own = localOptions.joined(separator: " ")
        if !own.contains("StrictHostKeyChecking") { out += ["-o", "StrictHostKeyChecking=no"] }
        if !own.contains("UserKnownHostsFile") { out += ["-o", "UserKnownHostsFile=/dev/null"] }
        if !own.contains("LogLevel") { out += ["-o", "LogLevel=ERROR"] }
        if let identityFile { out += ["-i", identityFile] }
        return out + localOptions
    }

    /// Forwards the guest port, runs `tool` with the arguments made for the
    /// local port, and ends with its exit code.
    func run(_ tool: String, _ arguments: (Int) -> [String]) async throws {
        guard let exe = ExecutableSearch.find(tool, environment: Environment.variables) else {
            throw RuntimeError("\(tool) not found in PATH (install openssh-client)", code: .notFound)
        }
        let instance = try InstanceOptions.parse([name] + (namespace.map { ["-n", $0] } ?? []))
        _ = try await RunningVM.locate(instance)
        let local = try LoopbackPort.free(udp: false)
        // Ctrl-C is ssh's (it shares the terminal): this process waits for it to end.
        let signals = SignalWatch([SIGINT, SIGQUIT]) { _ in }
        defer { signals.cancel() }
        let status = try await instance.withQMP { qmp in
            try await PortForward.withForwards([.init(proto: "tcp", local: local, guest: guestPort)], interface: nil, qmp: qmp) {
                let child = try await ChildProcess.spawn(SpawnRequest(
                    executable: exe, arguments: arguments(local), environment: Environment.variables.map { "\($0.key)=\($0.value)" },
                    fds: [0, 1, 2], newSession: false, parentDeathSignal: SIGTERM))
                return await child.waitForExit()
            }
        }
        if status.shellCode != 0 { throw CommandExit(code: status.shellCode) }
    }
}

struct SSH: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssh",
        abstract: "Log in to a VM with your OpenSSH, through a forward of its SSH port (as virtctl ssh).",
        discussion: """
            vtarget ssh [USER@]NAME [-- ssh arguments or a command]. The guest port is forwarded to a free port on \
            127.0.0.1 while ssh runs; host keys are not recorded (-o StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null) \
            unless --local-ssh-opts says otherwise. Exits with ssh's code.
            """)
    @Argument(help: "[USER@]NAME (vm/NAME and vmi/NAME as virtctl writes them).") var target: String
    @Option(name: .shortAndLong, help: "The VM's namespace.") var namespace: String?
    @Option(name: [.customShort("i"), .long], help: "The private key (ssh -i).") var identityFile: String?
    @Option(name: [.customShort("l"), .long], help: "The user, when the target does not say USER@.") var username: String?
    @Option(name: [.customShort("p"), .long], help: "The guest's SSH port.") var port: Int = 22
    @Option(name: [.customShort("c"), .long], help: "A command to run instead of a login shell.") var command: String?
    @Option(help: "Options for the local ssh, as it takes them (repeatable).") var localSshOpts: [String] = []
    @Argument(parsing: .postTerminator, help: "After --: passed to ssh after the destination.") var extra: [String] = []

    func validate() throws {
        guard GuestSSH.parseTarget(target) != nil else { throw ValidationError("\(target): expected [USER@]NAME") }
        if !(1...65535).contains(port) { throw ValidationError("--port: expected 1-65535, got \(port)") }
    }

    func run() async throws {
        let (user, name) = GuestSSH.parseTarget(target)!
        let ssh = GuestSSH(name: name, namespace: namespace, identityFile: identityFile, guestPort: port,
                           localOptions: localSshOpts.flatMap { $0.split(separator: " ").map(String.init) })
        let who = (user ?? username).map { $0 + "@" } ?? ""
        try await ssh.run("ssh") { local in
            ssh.sshOptions(port: local, portFlag: "-p") + [who + "127.0.0.1"] + extra + (command.map { [$0] } ?? [])
        }
    }
}

struct SCP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scp",
        abstract: "Copy files to or from a VM with your OpenSSH's scp, through a forward of its SSH port (as virtctl scp).",
        discussion: "One of SOURCE and DESTINATION is [USER@]NAME:PATH (vm/NAME: too), the other a local path.")
    @Argument(help: "SOURCE") var source: String
    @Argument(help: "DESTINATION") var destination: String
    @Option(name: .shortAndLong, help: "The VM's namespace.") var namespace: String?
    @Option(name: [.customShort("i"), .long], help: "The private key (scp -i).") var identityFile: String?
    @Option(name: [.customShort("l"), .long], help: "The user, when the remote side does not say USER@.") var username: String?
    @Option(name: [.customShort("P"), .long], help: "The guest's SSH port.") var port: Int = 22
    @Flag(name: [.customShort("r"), .long], help: "Copy directories recursively.") var recursive = false
    @Option(help: "Options for the local scp, as it takes them (repeatable).") var localSshOpts: [String] = []

    /// `[USER@]NAME:PATH` split; nil for a local path.
    static func remote(_ text: String) -> (user: String?, name: String, path: String)? {
        guard !text.hasPrefix("/"), !text.hasPrefix("."), let colon = text.firstIndex(of: ":"),
              let t = GuestSSH.parseTarget(String(text[..<colon])) else { return nil }
        return (t.user, t.name, String(text[text.index(after: colon)...]))
    }

    func validate() throws {
        switch (Self.remote(source), Self.remote(destination)) {
        case (nil, nil): throw ValidationError("neither \(source) nor \(destination) is [USER@]NAME:PATH on a VM")
        case (.some, .some): throw ValidationError("copy between a VM and a local path: \(source) and \(destination) are both on VMs")
        default: break
        }
        if !(1...65535).contains(port) { throw ValidationError("--port: expected 1-65535, got \(port)") }
    }

    func run() async throws {
        let r = Self.remote(source) ?? Self.remote(destination)!
        let who = (r.user ?? username).map { $0 + "@" } ?? ""
        let remote = who + "127.0.0.1:" + r.path
        let ssh = GuestSSH(name: r.name, namespace: namespace, identityFile: identityFile, guestPort: port,
                           localOptions: localSshOpts.flatMap { $0.split(separator: " ").map(String.init) })
        let pair = Self.remote(source) != nil ? [remote, destination] : [source, remote]
        try await ssh.run("scp") { local in ssh.sshOptions(port: local, portFlag: "-P") + (recursive ? ["-r"] : []) + pair }
    }
}
