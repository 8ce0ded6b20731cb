import ArgumentParser
import InstanceContract
import Testing
@testable import VTargetCommands

/// `run`'s fast parser (`RunRequest.parse`) against ArgumentParser's reading
/// of the same command lines (`Run.parse(...).request`): where the fast one
/// answers, the two answers are equal; where it does not, ArgumentParser
/// has the last word, and its messages.
@Suite struct RunRequestTests {
    /// ArgumentParser's reading, nil where it refuses the line.
    static func byArgumentParser(_ argv: [String]) -> RunRequest? {
        (try? Run.parse(argv))?.request
    }

    static let shim = Array(ShimArguments(instance: "default/board", specFile: "/state/board.yaml", statusFile: "/state/board.json",
                                          relativeTo: "/work").arguments().dropFirst())

    @Test func theFastParserReadsWhatArgumentParserReads() {
        let lines: [[String]] = [
            ["-f", "a.yaml"],
            ["-f", "examples/seed/stm32f4-qemu.yaml", "-f", "fw.yaml", "--until", "echo ready", "--timeout", "30s"],
            ["--filename=a.yaml", "--until=login:", "--ttl=5m", "--junit", "report.xml"],
            ["--until=a=b", "-f", "a.yaml"],
            ["-f", "-", "--lenient", "--allow-host-paths", "--allow-extra-args", "-R"],
            ["--recursive", "-f", "dir", "--no-sandbox", "--record", "out", "--include-images"],
            ["-f", "a.yaml", "--bundle-on-failure", "bundles"],
            ["-f", "a.yaml", "--no-bundle-on-failure"],
            ["-f", "a.yaml", "--", "pytest", "-x", "--until", "--"],
            ["-f", "a.yaml", "--"],
            ["-f", "a.yaml", "--until", "ready|login:", "--", "sh", "-c", "echo $VTARGET_SERIAL"],
            Self.shim,
        ]
        ParserAgreement.expectSameReading(lines, fast: { RunRequest.parse($0) }, argumentParser: Self.byArgumentParser)
        // Every field is reached: the lines above set each one to something other than its default.
        let all = lines.compactMap { RunRequest.parse($0) }
        #expect(all.contains { $0.input.recursive } && all.contains { $0.input.lenient } && all.contains { $0.input.allowHostPaths })
        #expect(all.contains { $0.input.allowExtraArgs } && all.contains { $0.noSandbox } && all.contains { $0.recording.includeImages })
        #expect(all.contains { $0.recording.noBundleOnFailure } && all.contains { $0.recording.recordDirectory == "out" })
        #expect(all.contains { $0.recording.failureDirectory == "bundles" } && all.contains { $0.junit == "report.xml" })
        #expect(all.contains { $0.ttl == "5m" } && all.contains { $0.timeout == "30s" } && all.contains { $0.until == "a=b" })
        #expect(all.contains { $0.command == ["pytest", "-x", "--until", "--"] } && all.contains { $0.shim != nil })
        #expect(all.contains { $0.input.files == ["examples/seed/stm32f4-qemu.yaml", "fw.yaml"] })
    }

    @Test func whatBothRefuse() {
        let lines: [[String]] = [
            [], ["-f"], ["--until"], ["-f", "a.yaml", "stray"],
            ["-f", "a.yaml", "--until", ""], ["-f", "a.yaml", "--until", "("], ["-f", "a.yaml", "--timeout", "soon"],
            ["-f", "a.yaml", "--ttl", "3 days"], ["-f", "a.yaml", "--record", ""], ["-f", "a.yaml", "--bundle-on-failure="],
            ["-f", "a.yaml", "--bundle-on-failure", "d", "--no-bundle-on-failure"], ["-f", "a.yaml", "--shim", "{}"],
            ["-f", "a.yaml", "--no-such-flag"], ["-f", "a.yaml", "--help"], ["-h"], ["-f", "a.yaml", "--lenient=yes"],
        ]
        ParserAgreement.expectBothRefuse(lines, fast: { RunRequest.parse($0) }, argumentParser: Self.byArgumentParser)
    }

    /// Lines of a shape the fast parser leaves alone, which ArgumentParser
    /// takes: `vtarget run` still runs them, through `VTarget.direct`.
    @Test func unusualShapesGoToArgumentParser() {
        for argv in [["-f", "a.yaml", "--until", "a", "--until", "b"]] {
            #expect(RunRequest.parse(argv) == nil, "\(argv)")
            #expect(Self.byArgumentParser(argv) != nil, "\(argv)")
            #expect(VTarget.direct(["run"] + argv) is Run, "\(argv)")
        }
    }

    /// A flag added to `Run` (or its groups) and not to the fast parser
    /// would send every line that uses it the slow way, silently.
    @Test func theFastParserKnowsEveryFlagOfRun() throws {
        let help = Run.helpMessage(includeHidden: true, columns: 1000)
        let long = try Regex(#"--([a-z][a-z-]*)"#)
        let named = Set(help.matches(of: long).compactMap { $0.output[1].substring.map(String.init) })
        let known = RunRequest.longNames.union(["help"])
        #expect(named.count > 10, "\(named)")
        #expect(named.subtracting(known).isEmpty, "flags of run the fast parser does not know: \(named.subtracting(known))")
        // --shim is private (the supervisor's), in no help; the corpus above covers it.
        #expect(known.subtracting(named) == ["shim"], "names the fast parser reads that run has not: \(known.subtracting(named))")
    }

    @Test func onlyRunTakesTheFastPath() {
        #expect(VTarget.fastRun(["run"] + Self.shim) != nil)
        #expect(VTarget.fastRun(["apply", "-f", "a.yaml"]) == nil)
        #expect(VTarget.fastRun(["-f", "a.yaml"]) == nil)
    }
}
