import ArgumentParser
import ControlAPI
import GitOpsSync

struct Diff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what apply would change, as a unified diff of each object's YAML (stored against the files').",
        discussion: """
            As kubectl diff: exit 0 when apply would change nothing, 1 when it would; 2 for bad input \
            (with file:line:column), 3 when the supervisor or diff(1) failed. Both sides are normalised the same way \
            (parsed and emitted again). With no supervisor running, everything is new (none is started).
            """)

    @OptionGroup var input: InputOptions

    func run() async throws {
        let loaded = try ResourceFiles.loadWithSources(input.selection)
        do {
            var live: [LiveObject] = []
            if let client = await SupervisorConnection.existing() {
                live = try await GitOpsSync(client: client).live()
            }
            let changes = ObjectDiff.changes(desired: loaded.map(\.resource), live: live)
            let tool = UnifiedDiff()
            for c in changes { printOut(try await tool.run(c), terminator: "") }
            if !changes.isEmpty { throw CommandExit(code: 1) }
        } catch let e as SyncError {
            printError("vtarget diff: \(e.message)")
            throw CommandExit(code: 3)
        }
    }
}
