import InstanceContract
import ArgumentParser
import ControlAPI
import ResourceKit
import HostOS
import TargetRuntime
import YAMLTree

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        _superCommandName: "vtarget",
        abstract: "List \(KindRegistry.builtIn.kinds.map(\.everydayName).joined(separator: ", ")) or machineprofiles, as kubectl get does.",
        discussion: """
            KIND: \(KindRegistry.builtIn.help), or machineprofiles (board profiles, as `vtarget machines` lists them). As in kubectl, the singular, \
            plural, short name, Kind and plural.group (qemuvirtualtargets.qemu.kubetarget.dev) all work. \
            -l takes kubectl's label selectors: app=x, app==x, app!=x, 'env in (a,b)', 'env notin (a,b)', app, !app; \
            commas join requirements that must all hold. -w prints the table, then a row (or with -o json|yaml an \
            object) each time an object of the kind changes, until interrupted. -o json and -o yaml print the \
            objects with their status.
            """)

    @Argument(help: "The kind: \(KindRegistry.builtIn.help), machineprofiles.")
    var kind: String

    @Argument(help: "Only this one.")
    var name: String?

    @OptionGroup var ns: NamespaceOptions

    @Option(name: .shortAndLong, help: "wide, yaml, json or name.")
    var output: String?

    @Option(name: [.customShort("l"), .long], help: "Only objects whose labels match this selector (kubectl's syntax).")
    var selector: String?

    @Flag(name: [.customShort("w"), .long], help: "After the listing, print each change to an object of the kind.")
    var watch = false

    static func isMachines(_ word: String) -> Bool {
        // `machines` are Viti Machines (machines.vitistack.io), as kubectl would list them.
        ["machineprofile", "machineprofiles"].contains(word.lowercased())
    }

    func validate() throws {
        if let output, !["wide", "yaml", "json", "name"].contains(output) { throw ValidationError("-o: expected wide, yaml, json or name, got \(output)") }
        if Self.isMachines(kind) {
            if selector != nil || watch { throw ValidationError("machineprofiles are board profiles: they have no labels and do not change while listed") }
            if let output, output != "wide" && output != "name" { throw ValidationError("-o: machineprofiles print as a table, wide or name, got \(output)") }
            return
        }
        do { _ = try KindRegistry.builtIn.resolve(kind) } catch { throw ValidationError(error.description + ", machineprofiles") }
        if let selector {
            do { _ = try LabelSelector(parsing: selector) } catch { throw ValidationError(error.description) }
        }
    }

    func run() async throws {
        if Self.isMachines(kind) {
            let m = try Machines.parse(output == "wide" || output == "name" ? ["-o", output!] : [])
            return try await m.run()
        }
        let listing = ObjectListing(kind: try KindRegistry.builtIn.resolve(kind), namespaces: ns, name: name,
                                    selector: try selector.map { try LabelSelector(parsing: $0) } ?? LabelSelector([]))
        let client = try await SupervisorConnection.ensure()
        do {
            if watch { return try await watchChanges(listing, client) }
            let objects = try await listing.objects(client)
            if let name, objects.isEmpty {
                printError("Error from server (NotFound): \(listing.kind.qualifiedName) \"\(name)\" not found")
                throw CommandExit(code: 1)
            }
            switch output {
            case "json": printOut(Table.json(name != nil ? objects[0].node : Table.list(objects.map(\.node))))
            case "yaml": printOut(YAMLEmitter.emit(name != nil ? objects[0].node : Table.list(objects.map(\.node))), terminator: "")
            case "name": for o in objects { printOut("\(listing.kind.qualifiedName)/\(o.name)") }
            default:
                if objects.isEmpty {
                    return printOut(ns.allNamespaces ? "No resources found" : "No resources found in \(ns.effective) namespace.")
                }
                printOut(Table.render([listing.header(wide: output == "wide")] + objects.map { listing.row($0, wide: output == "wide") }))
            }
        } catch let e as ControlError { throw e.asCommandError }
    }
}
