import ArgumentParser
import Testing
@testable import VTargetCommands

/// Every command names itself. Without `commandName`, ArgumentParser derives
/// the name with `String(describing:)` of the command's type while it builds
/// the command tree on every invocation, and in a binary this size each of
/// those dynamic casts scans the whole protocol-conformance table: perf put
/// it at 29% of a `vtarget render` (about 7 ms of every start).
@Suite struct CommandNameTests {
    @Test func everyCommandHasAnExplicitName() {
        var missing: [String] = []
        var seen = 0
        func walk(_ command: ParsableCommand.Type, path: String) {
            seen += 1
            let name = command.configuration.commandName
            if name == nil { missing.append(path + " " + String(describing: command)) }
            for sub in command.configuration.subcommands { walk(sub, path: path + " " + (name ?? "?")) }
        }
        walk(VTarget.self, path: "")
        #expect(seen > 40, "the walk found \(seen) commands")
        #expect(missing.isEmpty, "commands without commandName: \(missing)")
    }
}

/// `run` and `can serve` skip the command tree when their arguments parse
/// alone; anything else, and anything that does not parse (help, mistakes),
/// goes through the tree for its messages.
@Suite struct DirectCommandTests {
    @Test func runAndCANServeAloneEverythingElseThroughTheTree() {
        #expect(VTarget.direct(["run", "-f", "a.yaml", "--until", "ready"]) is Run)
        #expect(VTarget.direct(["run", "-f", "a.yaml", "--shim", "{}"]) == nil, "a malformed --shim fails validation alone, and again in the tree")
        #expect(VTarget.direct(["can", "serve", "vehicle", "-n", "team"]) is CANServe)
        for refused in [["run", "--help"], ["run", "--until", ""], ["run", "--no-such-flag"], ["can", "serve"], ["can", "dump", "bus"],
                        ["get", "instances"], ["--version"], [], ["help", "run"]] {
            #expect(VTarget.direct(refused) == nil, "\(refused)")
        }
    }
}
