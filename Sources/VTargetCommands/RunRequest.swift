import ArgumentParser
import InstanceContract
import MachineCatalog

/// Everything `vtarget run` is given, as plain values. `Run` (ArgumentParser)
/// builds one from its flags; `RunRequest.parse` builds the same from the
/// argv of the common case without ArgumentParser. That library reads a
/// command's flags by reflection, and in a binary this size its first
/// dynamic casts each scan the whole protocol-conformance table: about 6 ms
/// of every `run` and of every supervisor's shim before the spec is read
/// (a board boots to its banner in about 25 ms). `RunRequestTests` holds the
/// two parsers to the same result over a corpus of command lines.
struct RunRequest: Equatable, Sendable {
    var input = InputSelection()
    var until: String?
    var timeout: String?
    var ttl: String?
    var junit: String?
    var noSandbox = false
    var recording = RecordSettings()
    /// `--shim JSON`: set by the supervisor (`ShimArguments`).
    var shim: String?
    /// After `--`: run once the targets are Ready.
    var command: [String] = []

    /// The supervisor's settings, when a supervisor started this run.
    func shimArguments() throws -> ShimArguments? {
        guard let shim else { return nil }
        do { return try ShimArguments.parse(shim) } catch { throw ValidationError("--shim: \(error)") }
    }

    /// `run`'s own checks (the option groups check theirs: `InputSelection`, `RecordSettings`).
    func validateRun() throws {
        _ = try shimArguments()
        // An empty pattern matches before any output: the run would end at once, never what was meant.
        if until == "" { throw ValidationError("--until: empty; give a regular expression for the output that ends the run, e.g. --until 'login:'") }
        if let until, (try? Regex(until)) == nil { throw ValidationError("--until: not a valid regular expression: \(until)") }
        if let timeout, Quantity.parseDuration(timeout) == nil { throw ValidationError("--timeout: expected \(Quantity.durationHint), got \(timeout)") }
        if let ttl, Quantity.parseDuration(ttl) == nil { throw ValidationError("--ttl: expected \(Quantity.durationHint), got \(ttl)") }
    }

    /// The checks ArgumentParser makes for `Run` and its groups.
    func validate() throws {
        try input.validate()
        try recording.validate()
        try validateRun()
    }
}

extension RunRequest {
    /// `run`'s flags, for the plain shape (`PlainArguments`); a command after `--`.
    private static let plain = PlainArguments<RunRequest>(
        input: \.input,
        options: [
            "until": { $0.until = $1 },
            "timeout": { $0.timeout = $1 },
            "ttl": { $0.ttl = $1 },
            "junit": { $0.junit = $1 },
            "record": { $0.recording.recordDirectory = $1 },
            "bundle-on-failure": { $0.recording.failureDirectory = $1 },
            "shim": { $0.shim = $1 },
        ],
        flags: [
            "no-sandbox": { $0.noSandbox = true },
            "no-bundle-on-failure": { $0.recording.noBundleOnFailure = true },
            "include-images": { $0.recording.includeImages = true },
        ],
        afterTerminator: { $0.command = $1 })

    /// Every long flag the fast parser reads.
    static var longNames: Set<String> { plain.longNames }

    /// The arguments after `run`, when they are of the plain shape
    /// (`PlainArguments`) and pass `run`'s checks; nil for anything else,
    /// which ArgumentParser then parses, saying what is wrong.
    static func parse(_ arguments: some Collection<String>) -> RunRequest? {
        guard let request = plain.parse(arguments, into: RunRequest()), (try? request.validate()) != nil else { return nil }
        return request
    }
}
