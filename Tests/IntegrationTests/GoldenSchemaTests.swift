import Foundation
import NIOCore
import NIOPosix
import QMP
import Sandbox
import Testing
import TestSupport

/// The installed QEMU, asked over QMP what it accepts: its schema and the
/// properties of each device the goldens use.
final class QEMUIntrospection {
    let binary: String
    let schema: QAPISchema
    private let qmp: QMPClient
    private let child: ChildProcess
    private let group: MultiThreadedEventLoopGroup
    private var properties: [String: [String: String]] = [:]

    private init(binary: String, schema: QAPISchema, qmp: QMPClient, child: ChildProcess, group: MultiThreadedEventLoopGroup) {
        (self.binary, self.schema, self.qmp, self.child, self.group) = (binary, schema, qmp, child, group)
    }

    /// `qemu -machine none` with its monitor on a socket pair, negotiated.
    static func start(_ binary: String) async throws -> QEMUIntrospection {
        let (ours, theirs) = try makeSocketPair()
        let child = try await ChildProcess.spawn(SpawnRequest(
            executable: "/usr/bin/" + binary,
            arguments: ["-machine", "none", "-nodefaults", "-display", "none", "-S",
                        "-chardev", "socket,id=vt-qmp,fd=3", "-mon", "chardev=vt-qmp,mode=control"],
            environment: ["PATH=/usr/bin:/bin"], fds: [-1, -1, 2, theirs]))
        close(theirs)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (handler, core, events) = QMPClient.makeHandler()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler) } }
            .withConnectedSocket(ours).get()
        let qmp = try await QMPClient.handshake(on: channel, core: core, events: events)
        let schema = QAPISchema(try await qmp.execute("query-qmp-schema"))
        return QEMUIntrospection(binary: binary, schema: schema, qmp: qmp, child: child, group: group)
    }

    /// A device's properties and their types; nil when QEMU has no such device.
    func properties(of driver: String) async -> [String: String]? {
        if let known = properties[driver] { return known }
        guard case .array(let list)? = try? await qmp.execute("device-list-properties", arguments: .object(["typename": .string(driver)])) else {
            return nil
        }
        var out: [String: String] = [:]
        for p in list { if let n = p["name"]?.stringValue { out[n] = p["type"]?.stringValue ?? "" } }
        properties[driver] = out
        return out
    }

    /// A machine's properties (`pflash0` on q35, not on vexpress-a9), by
    /// its name or alias; nil when QEMU has no such machine.
    func machineProperties(of machine: String) async -> Set<String>? {
        guard case .array(let machines)? = try? await qmp.execute("query-machines"),
              let known = machines.first(where: { $0["name"]?.stringValue == machine || $0["alias"]?.stringValue == machine }),
              let name = known["name"]?.stringValue,
              case .array(let list)? = try? await qmp.execute("qom-list-properties", arguments: .object(["typename": .string(name + "-machine")]))
        else { return nil }
        return Set(list.compactMap { $0["name"]?.stringValue })
    }

    /// Every `-machine` key=value against the machine the first `-machine` names.
    func machineProblems(_ argv: [String]) async -> [String] {
        let values = argv.indices.dropLast().filter { argv[$0] == "-machine" }.map { Self.keyValues(argv[$0 + 1]) }
        guard let machine = values.first?["driver"]?.stringValue else { return ["no -machine"] }
        guard let props = await machineProperties(of: machine) else { return ["\(binary) has no machine \(machine)"] }
        return values.flatMap { $0.keys.filter { $0 != "driver" && !props.contains($0) }.sorted().map { "-machine \(machine) has no property \"\($0)\"" } }
    }

    func stop() async throws {
        _ = try? await qmp.execute("quit")
        _ = await child.waitForExit()
        try await group.shutdownGracefully()
    }

    /// What QEMU would refuse in one argument: JSON against the schema,
    /// devices against their properties.
    func problems(option: String, argument: String) async -> [String] {
        let json = argument.hasPrefix("{") ? (try? JSONValue.parse(Array(argument.utf8))) : nil
        if argument.hasPrefix("{"), json == nil { return ["\(option) \(argument): not JSON"] }
        switch option {
        case "-blockdev", "-netdev":
            guard let json else { return [] }  // key=value forms are parsed by QEMU's option code, not checked here
            let command = option == "-blockdev" ? "blockdev-add" : "netdev_add"
            guard let type = schema.argumentType(of: command) else { return ["\(binary) has no \(command)"] }
            return schema.problems(json, type: type, at: option)
        case "-chardev":
            if json != nil { return ["-chardev \(argument): QEMU reads -chardev as key=value only"] }
            let backend = String(argument.prefix { $0 != "," })
            let known = schema.tagValues(of: "chardev-add", member: "backend")
            return known.contains(backend) ? [] : ["-chardev \(argument): no chardev backend \"\(backend)\""]
        case "-device":
            let given: [String: JSONValue]
            if case .object(let o)? = json {
                given = o
            } else {
                given = Self.keyValues(argument)
            }
            guard let driver = given["driver"]?.stringValue else { return ["-device \(argument): no driver"] }
            guard let props = await properties(of: driver) else { return ["-device \(argument): \(binary) has no device \(driver)"] }
            var out: [String] = []
            for (key, value) in given.sorted(by: { $0.key < $1.key }) where !["driver", "id", "bus"].contains(key) {
                guard let type = props[key] else {
                    out.append("-device \(argument): \(driver) has no property \"\(key)\"")
                    continue
                }
                if json != nil, !Self.fits(value, type) {
                    out.append("-device \(argument): \(driver).\(key) is a \(type), got \(value)")
                }
            }
            return out
        default:
            return []
        }
    }

    /// `driver,key=value,...` with `,,` for a comma inside a value.
    static func keyValues(_ s: String) -> [String: JSONValue] {
        var parts: [String] = [], current = ""
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            let next = s.index(after: i)
            if c == ",", next < s.endIndex, s[next] == "," {
                current.append(",")
                i = s.index(after: next)
                continue
            }
            if c == "," { parts.append(current); current = "" } else { current.append(c) }
            i = next
        }
        parts.append(current)
        var out: [String: JSONValue] = [:]
        for (n, p) in parts.enumerated() {
            if let eq = p.firstIndex(of: "=") {
                out[String(p[..<eq])] = .string(String(p[p.index(after: eq)...]))
            } else if n == 0 {
                out["driver"] = .string(p)
            }
        }
        return out
    }

    /// JSON -device values are typed: QEMU's visitor refuses "1" for an int.
    static func fits(_ v: JSONValue, _ type: String) -> Bool {
        switch type {
        case "bool": if case .bool = v { return true } else { return false }
        case "str", "drive", "string": if case .string = v { return true } else { return false }
        case _ where type.hasPrefix("int") || type.hasPrefix("uint") || type == "size":
            if case .number(let n) = v { return n.rounded() == n } else { return false }
        default: return true
        }
    }
}

/// Every golden's -blockdev, -netdev, -device, -chardev and -machine, checked
/// against the QEMU that runs them (libvirt checks its goldens against QAPI the same way).
@Suite(.serialized) struct GoldenSchemaTests {
    static let goldenDir = repoRoot + "/Tests/QEMULaunchTests/Golden"

    /// (golden file, binary, argv) of every target in every `.argv` golden.
    static func goldenCommands() throws -> [(String, [String])] {
        var out: [(String, [String])] = []
        for file in try FileManager.default.contentsOfDirectory(atPath: goldenDir).sorted() where file.hasSuffix(".argv") {
            let text = try String(contentsOfFile: goldenDir + "/" + file, encoding: .utf8)
            for section in text.components(separatedBy: "\n---\n") {
                let words = try section.split(separator: "\n").map { try JSONDecoder().decode(String.self, from: Data($0.utf8)) }
                out.append((file, words))
            }
        }
        return out
    }

    @Test func goldensMatchTheInstalledQEMUsSchema() async throws {
        let commands = try Self.goldenCommands()
        var checked = Set<String>()
        for binary in ["qemu-system-arm", "qemu-system-x86_64"] {
            let qemu = try await QEMUIntrospection.start(binary)
            for (file, argv) in commands where argv.first == binary {
                for i in argv.indices.dropLast() where ["-blockdev", "-netdev", "-device", "-chardev"].contains(argv[i]) {
                    let problems = await qemu.problems(option: argv[i], argument: argv[i + 1])
                    #expect(problems.isEmpty, "\(file): \(problems.joined(separator: "\n"))")
                    checked.insert(argv[i])
                }
                let machine = await qemu.machineProblems(argv)
                #expect(machine.isEmpty, "\(file): \(machine.joined(separator: "\n"))")
            }
            try await qemu.stop()
        }
        #expect(checked.isSuperset(of: ["-blockdev", "-device", "-chardev"]), "the goldens exercise every kind checked")
    }

    /// The check itself: misspelled, missing, mistyped and unknown fail.
    @Test func schemaCheckRefusesWhatQEMUWouldRefuse() async throws {
        let qemu = try await QEMUIntrospection.start("qemu-system-x86_64")
        func problems(_ option: String, _ argument: String) async -> [String] {
            await qemu.problems(option: option, argument: argument)
        }
        #expect(await problems("-blockdev", #"{"driver":"file","filename":"/x","node-name":"file-x","read-only":true}"#).isEmpty)
        #expect(await problems("-blockdev", #"{"driver":"qcow2","file":"file-x","node-name":"fmt-x"}"#).isEmpty)
        #expect(await problems("-blockdev", #"{"driver":"file","filename":"/x","node-name":"n","read_only":true}"#)
            == [#"-blockdev: unknown member "read_only""#])
        #expect(await problems("-blockdev", #"{"driver":"file","filname":"/x","node-name":"n"}"#).contains(#"-blockdev: unknown member "filname""#))
        #expect(await problems("-blockdev", #"{"driver":"file","node-name":"n"}"#) == [#"-blockdev: required member "filename" is missing"#])
        #expect(await problems("-blockdev", #"{"driver":"file","filename":"/x","read-only":"on"}"#).count == 1)
        #expect(!(await problems("-blockdev", #"{"driver":"qcow3","file":"f"}"#)).isEmpty)
        #expect(!(await problems("-blockdev", #"{"driver":"qcow2","file":{"driver":"file","filename":"/x","bogus":1}}"#)).isEmpty)
        #expect(await problems("-netdev", #"{"type":"user","id":"n0"}"#).isEmpty)
        #expect(!(await problems("-netdev", #"{"type":"user","id":"n0","hostfwd":"x"}"#)).isEmpty)
        #expect(await problems("-device", #"{"driver":"virtio-blk-pci","drive":"fmt-x","id":"dev-x"}"#).isEmpty)
        #expect(!(await problems("-device", #"{"driver":"virtio-blk-pci","drvie":"fmt-x"}"#)).isEmpty)
        #expect(!(await problems("-device", #"{"driver":"virtio-blk-pci","drive":"fmt-x","bootindex":"1"}"#)).isEmpty)
        #expect(!(await problems("-device", #"{"driver":"no-such-device"}"#)).isEmpty)
        #expect(await problems("-device", "loader,file=/a,,b").isEmpty)
        #expect(!(await problems("-device", "loader,fiel=/a")).isEmpty)
        #expect(await problems("-chardev", "socket,id=a,fd=3").isEmpty)
        #expect(!(await problems("-chardev", "sockit,id=a")).isEmpty)
        #expect(!(await problems("-chardev", #"{"id":"a","backend":{"type":"null"}}"#)).isEmpty)
        #expect(await qemu.machineProblems(["-machine", "q35", "-machine", "pflash0=fmt-x"]).isEmpty)
        #expect(await qemu.machineProblems(["-machine", "q35", "-machine", "pflash9=fmt-x"]) == [#"-machine q35 has no property "pflash9""#])
        try await qemu.stop()
    }
}
