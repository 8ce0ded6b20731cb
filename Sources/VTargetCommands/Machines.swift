import ArgumentParser
import MachineCatalog
import HostOS
import TargetRuntime

struct Machines: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "machines",
        abstract: "List machine profiles and whether the installed QEMU provides each.",
        discussion: "Profiles come from the built-in machines/, ~/.config/vtarget/machines and $VTARGET_MACHINES. The QEMU probe is cached per binary and version.")

    @Option(name: .shortAndLong, help: "wide adds the QEMU binary and description; name prints names only.")
    var output: Format = .table

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, wide, name }

    func run() async throws {
        let env = Environment.variables
        let catalog = try Environment.catalog(env)
        var rows: [[String]] = []
        var provided: [String: Set<String>?] = [:]
        for p in catalog.profiles.sorted(by: { $0.name < $1.name }) {
            if output == .name {
                printOut(p.name)
                continue
            }
            if provided[p.qemuBinary] == nil {
                let path = ExecutableSearch.find(p.qemuBinary, environment: env)
                provided[p.qemuBinary] = .some(path == nil ? nil : await HostProbe.machines(of: path!, environment: env))
            }
            let available: String
            switch provided[p.qemuBinary]! {
            case .none: available = "no (\(p.qemuBinary) not installed)"
            case .some(let set): available = set.contains(p.qemuMachine) ? "yes" : "no (QEMU lacks \(p.qemuMachine))"
            }
            var row = [p.name, p.architectures.map(\.rawValue).joined(separator: ","), p.qemuMachine,
                       available, p.aliases.joined(separator: ",")]
            if output == .wide { row += [p.qemuBinary, p.summary] }
            rows.append(row)
        }
        if output == .name { return }
        var header = ["NAME", "ARCH", "QEMU MACHINE", "AVAILABLE", "ALIASES"]
        if output == .wide { header += ["BINARY", "DESCRIPTION"] }
        printOut(Table.render([header] + rows))
        let kvm = await HostProbe.kvm(environment: env)
        printOut("\nKVM: " + (kvm.usable ? "usable" : "not used") + " (\(kvm.reason)); accel: auto picks " + (kvm.usable ? "kvm for native guests" : "tcg"))
    }
}

/// kubectl-style columns: left-aligned, three spaces apart.
enum Table {
    static func render(_ rows: [[String]]) -> String { render(rows, widths: widths(rows)) }
}
