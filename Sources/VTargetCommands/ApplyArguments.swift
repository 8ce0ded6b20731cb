import ArgumentParser
import ControlAPI
import GitOpsSync
import InstanceContract
import MachineCatalog
import ResourceKit

/// Everything `vtarget apply` is given, as plain values: `Apply`
/// (ArgumentParser) builds one from its flags, `parse` from the argv of the
/// plain shape (`PlainArguments`) without it. `ApplyArgumentsTests` holds
/// the two to the same reading.
struct ApplyArguments: Equatable, Sendable {
    var input = InputSelection()
    var selector: String?
    var prune = false
    var wait = false
    var timeout: String?

    /// `apply`'s own checks.
    func validateApply() throws {
        if let timeout {
            guard wait else { throw ValidationError("--timeout needs --wait") }
            if Quantity.parseDuration(timeout) == nil { throw ValidationError("--timeout: expected \(Quantity.durationHint), got \(timeout)") }
        }
        if prune && selector == nil {
            throw ValidationError("--prune needs -l KEY=VALUE: pruning every object not in the input is refused (vtarget sync --prune prunes only what sync applied)")
        }
        if let selector { do { _ = try LabelSelector(parsing: selector) } catch { throw ValidationError(error.description) } }
    }

    /// The checks ArgumentParser makes for `Apply` and its group.
    func validate() throws {
        try input.validate()
        try validateApply()
    }

    func execute() async throws {
        var loaded = try ResourceFiles.loadWithSources(input)
        var rule = SyncPlan.PruneRule.none
        if let selector {
            let s = try LabelSelector(parsing: selector)
            loaded = loaded.filter { s.matches($0.root[path: ["metadata", "labels"]]?.stringEntries ?? [:]) }
            if loaded.isEmpty {
                printError("error: no objects in " + input.files.joined(separator: ", ") + " match -l \(selector)")
                throw CommandExit(code: ExitCode.badInput)
            }
            if prune { rule = .selector(s, namespaces: Set(loaded.map(\.resource.namespace))) }
        }
        let client = try await SupervisorConnection.ensure()
        // The prunes are planned before applying, so nothing applied now is taken for a stale object.
        let pruning = rule == .none ? nil : try await Sync.run { try await GitOpsSync(client: client).plan(loaded.map(\.resource), prune: rule) }
        let results: [ObjectResult]
        do { results = try await client.send(.POST, "/v1/apply", ApplyRequest(resources: loaded.map(\.resource))) } catch {
            if error.status == 422, !error.diagnostics.isEmpty {
                for line in ApplyDiagnostics(sources: loaded).render(error.diagnostics) { printError(line) }
                throw CommandExit(code: ExitCode.badInput)
            }
            throw error.asCommandError
        }
        for r in results { printOut("\(Table.qualified(r.kind))/\(r.name) \(r.action)") }
        if let pruning, !pruning.prunes.isEmpty {
            for p in try await Sync.run({ try await GitOpsSync(client: client).execute(pruning.prunesOnly) }) {
                printOut("\(Table.qualified(p.kind))/\(p.name) pruned")
            }
        }
        if wait {
            let limit = timeout ?? "60s"
            let outcome = try await ReadyWait(client: client, query: "", chooses: ReadyWait.chooses(results))
                .run(seconds: Quantity.parseDuration(limit)!)
            let code = ReadyWait.report(outcome, timeout: limit)
            if code != 0 { throw CommandExit(code: code) }
        }
    }

    private static let plain = PlainArguments<ApplyArguments>(
        input: \.input,
        options: ["selector": { $0.selector = $1 }, "timeout": { $0.timeout = $1 }],
        flags: ["prune": { $0.prune = true }, "wait": { $0.wait = true }],
        short: ["-l": "selector"])

    /// Every long flag the fast parser reads.
    static var longNames: Set<String> { plain.longNames }

    /// The arguments after `apply` of the plain shape that pass `apply`'s
    /// checks; nil for anything else (ArgumentParser then says what is wrong).
    static func parse(_ arguments: some Collection<String>) -> ApplyArguments? {
        guard let request = plain.parse(arguments, into: ApplyArguments()), (try? request.validate()) != nil else { return nil }
        return request
    }
}
