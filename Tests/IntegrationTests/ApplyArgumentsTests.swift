import ArgumentParser
import Testing
@testable import VTargetCommands

/// `apply`'s fast parser (`ApplyArguments.parse`) against ArgumentParser's
/// reading of the same lines (`Apply.parse(...).arguments`), as
/// `RunRequestTests` does for `run`.
@Suite struct ApplyArgumentsTests {
    static func byArgumentParser(_ argv: [String]) -> ApplyArguments? {
        (try? Apply.parse(argv))?.arguments
    }

    @Test func theFastParserReadsWhatArgumentParserReads() {
        let lines: [[String]] = [
            ["-f", "a.yaml"],
            ["--wait", "--timeout", "30s", "-f", "t.yaml"],
            ["-f", "a.yaml", "-f", "b.yaml", "--wait"],
            ["--filename=dir", "-R", "--lenient", "--allow-host-paths", "--allow-extra-args"],
            ["-f", "-", "-l", "app=ci", "--prune"],
            ["-f", "a.yaml", "--selector=tier in (a,b)", "--wait", "--timeout=5m"],
        ]
        ParserAgreement.expectSameReading(lines, fast: { ApplyArguments.parse($0) }, argumentParser: Self.byArgumentParser)
        let all = lines.compactMap { ApplyArguments.parse($0) }
        #expect(all.contains { $0.input.recursive } && all.contains { $0.input.lenient } && all.contains { $0.input.allowHostPaths })
        #expect(all.contains { $0.input.allowExtraArgs } && all.contains { $0.prune } && all.contains { $0.selector == "tier in (a,b)" })
        #expect(all.contains { $0.wait && $0.timeout == "30s" } && all.contains { $0.input.files == ["a.yaml", "b.yaml"] })
    }

    @Test func whatBothRefuse() {
        let lines: [[String]] = [
            [], ["-f"], ["-f", "a.yaml", "stray"], ["-f", "a.yaml", "--timeout", "30s"],
            ["-f", "a.yaml", "--wait", "--timeout", "soon"], ["-f", "a.yaml", "--prune"], ["-f", "a.yaml", "-l", "=bad=="],
            ["-f", "a.yaml", "--no-such-flag"], ["-f", "a.yaml", "--help"], ["-h"], ["-f", "a.yaml", "--wait=yes"],
            ["-f", "a.yaml", "--", "x"],
        ]
        ParserAgreement.expectBothRefuse(lines, fast: { ApplyArguments.parse($0) }, argumentParser: Self.byArgumentParser)
    }

    /// What ArgumentParser takes and the fast parser leaves to it: `apply`
    /// still runs these, through `VTarget.direct`.
    @Test func unusualShapesGoToArgumentParser() {
        for argv in [["-f", "a.yaml", "--wait", "--wait"], ["-Rf", "dir"]] {
            #expect(ApplyArguments.parse(argv) == nil, "\(argv)")
            #expect(Self.byArgumentParser(argv) != nil, "\(argv)")
            #expect(VTarget.direct(["apply"] + argv) is Apply, "\(argv)")
        }
    }

    /// A flag added to `Apply` and not to the fast parser would send every
    /// line that uses it the slow way, silently.
    @Test func theFastParserKnowsEveryFlagOfApply() throws {
        let help = Apply.helpMessage(includeHidden: true, columns: 1000)
        let named = Set(help.matches(of: try Regex(#"--([a-z][a-z-]*)"#)).compactMap { $0.output[1].substring.map(String.init) })
        let known = ApplyArguments.longNames.union(["help"])
        #expect(named.count > 5, "\(named)")
        #expect(named == known, "apply's: \(named.sorted()); the fast parser's: \(known.sorted())")
    }

    @Test func onlyApplyTakesTheFastPath() {
        #expect(VTarget.fastApply(["apply", "--wait", "-f", "a.yaml"]) != nil)
        #expect(VTarget.fastApply(["run", "-f", "a.yaml"]) == nil)
        #expect(VTarget.fastApply(["-f", "a.yaml"]) == nil)
    }
}
