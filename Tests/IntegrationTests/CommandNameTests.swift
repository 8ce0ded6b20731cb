import ArgumentParser
import Testing
@testable import VTargetCommands
import TargetRuntime

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

/// `run`, `can serve` and the hot verbs skip the command tree when their
/// arguments parse alone; anything else, and anything that does not parse
/// (help, mistakes), goes through the tree for its messages.
@Suite struct DirectCommandTests {
    @Test func hotCommandsAloneEverythingElseThroughTheTree() {
        #expect(VTarget.direct(["run", "-f", "a.yaml", "--until", "ready"]) is Run)
        #expect(VTarget.direct(["run", "-f", "a.yaml", "--shim", "{}"]) == nil, "a malformed --shim fails validation alone, and again in the tree")
        #expect(VTarget.direct(["can", "serve", "vehicle", "-n", "team"]) is CANServe)
        #expect(VTarget.direct(["apply", "--wait", "-f", "a.yaml"]) is Apply)
        #expect(VTarget.direct(["wait", "t1", "--for", "condition=Ready", "--timeout", "30s"]) is Wait)
        #expect(VTarget.direct(["get", "instances", "-o", "json"]) is Get)
        #expect(VTarget.direct(["delete", "-f", "a.yaml"]) is Delete)
        for refused in [["run", "--help"], ["run", "--until", ""], ["run", "--no-such-flag"], ["can", "serve"], ["can", "dump", "bus"],
                        ["apply"], ["apply", "--help"], ["get", "-o", "bogus", "instances"], ["wait"], ["delete", "--bogus"],
                        ["logs", "t1"], ["--version"], [], ["help", "run"]] {
            #expect(VTarget.direct(refused) == nil, "\(refused)")
        }
    }

    /// What `CANBusHost` runs, and only that, skips every parser; other
    /// spellings of `can serve` still parse (`direct`, or the tree for help).
    @Test func theBusHostsOwnArgumentsSkipTheParser() {
        let started = CANBusHost.hostArguments(bus: "vehicle", namespace: "team")
        #expect(VTarget.busHost(started)?.bus == "vehicle")
        #expect(VTarget.busHost(started)?.namespace == "team")
        for other in [["can", "serve", "vehicle", "-n", "team"], ["can", "serve", "vehicle"], ["can", "serve", "vehicle", "--namespace"],
                      ["can", "serve", "--help", "--namespace", "team"], ["can", "serve", "vehicle", "--namespace", "--help"],
                      ["can", "serve", "vehicle", "--listen", "0.0.0.0:29536"], ["can", "dump", "vehicle", "--namespace", "team"],
                      ["run", "serve", "vehicle", "--namespace", "team"], ["can", "serve", "", "--namespace", "team"]] {
            #expect(VTarget.busHost(other) == nil, "\(other)")
        }
        #expect(VTarget.direct(["can", "serve", "vehicle", "-n", "team"]) is CANServe)
    }

    /// The direct table's words are the commands' names, and each of those
    /// commands names its super-command, so parsing it alone skips the
    /// completion-script check while its help (from the tree) is unchanged.
    @Test func theDirectWordsAreTheCommandNames() {
        let direct: [(String, ParsableCommand.Type, String)] = [
            ("run", Run.self, "vtarget"), ("apply", Apply.self, "vtarget"), ("wait", Wait.self, "vtarget"),
            ("get", Get.self, "vtarget"), ("delete", Delete.self, "vtarget"), ("serve", CANServe.self, "vtarget can")]
        for (word, command, parent) in direct {
            #expect(command.configuration.commandName == word)
            #expect(command.configuration._superCommandName == parent)
        }
        #expect(CAN.configuration.commandName == "can")
    }
}
