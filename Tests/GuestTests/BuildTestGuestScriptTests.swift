import Foundation
import TestSupport
import Testing

/// The script's own contract, without building anything.
@Suite struct BuildTestGuestScriptTests {
    func run(_ args: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: repoRoot + "/scripts/build-test-guest.sh")
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    @Test func unknownArgumentsAreRefusedWithTheValidOnes() throws {
        let r = try run(["--clod"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("unknown argument '--clod'") && r.stderr.contains("--cloud, --cached"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    /// `--cached` never builds: an empty cache answers "not built" (exit 3) and stays empty.
    @Test func cachedOnlyAnswersWithoutBuilding() throws {
        let cache = try scratchDirectory("guest-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let r = try run(["--cached"], environment: ["VTARGET_GUEST_CACHE": cache, "VTARGET_GUEST_ARM64": "0"])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(r.stderr.contains("is not built yet") && r.stdout.isEmpty, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasPrefix("busybox-") }.isEmpty)
    }

    @Test func helpIsTheHeader() throws {
        let r = try run(["--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("--cloud") && r.stdout.contains("VTARGET_GUEST_CACHE") && !r.stdout.contains("set -euo"), "\(r.stdout)")
    }
}
