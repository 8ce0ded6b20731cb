import ArgumentParser
import HostOS
import Testing
import VTargetCommands

/// How errors become exit codes: 2 is bad input only.
@Suite struct ExitCodeTests {
    struct Unexpected: Error {}

    @Test func onlyBadInputExitsTwo() {
        #expect(VTarget.exitCode(reporting: Unexpected()) == 1, "an unknown error is not the user's fault")
        #expect(VTarget.exitCode(reporting: RuntimeError("cannot write x")) == 1)
        #expect(VTarget.exitCode(reporting: RuntimeError("QMP error GenericError: no", code: .qmp)) == 1)
        #expect(VTarget.exitCode(reporting: RuntimeError("\"a b\" is not a bus name", code: .badInput)) == 2)
        #expect(VTarget.exitCode(reporting: ValidationError("--until: not a valid regular expression")) == 2)
        #expect(VTarget.exitCode(reporting: ArgumentParser.ExitCode(3)) == 3)
    }

    @Test func parseErrorsAreBadInput() async {
        #expect(await VTarget.runMain(["run", "--no-such-flag"]) == 2)
        #expect(await VTarget.runMain(["run", "--until", "("]) == 2)
    }
}
