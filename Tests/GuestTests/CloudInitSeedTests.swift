import DiskImages
import Foundation
import Testing

/// Runs a tool to completion; its stdout, or the test fails with its stderr.
func runTool(_ path: String, _ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw ToolFailure(description: "\(path) \(args.joined(separator: " ")): exit \(p.terminationStatus): \(String(decoding: errData, as: UTF8.self))")
    }
    return String(decoding: data, as: UTF8.self)
}

struct ToolFailure: Error, CustomStringConvertible { var description: String }

func scratchDirectory(_ tag: String) throws -> String {
    let dir = "/tmp/vt-\(tag)-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

@Suite struct CloudInitSeedTests {
    /// Reads each ISO back with isoinfo (a different tool from the writer):
    /// the label cloud-init looks for, Rock Ridge names, every file's bytes.
    @Test(arguments: SeedCase.all)
    func isoHoldsLabelAndFiles(_ c: SeedCase) async throws {
        let dir = try scratchDirectory("seed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = try c.files()
        let iso = dir + "/seed.iso"
        try await CloudInitSeed(environment: ProcessInfo.processInfo.environment).write(files, to: iso)
        let pvd = try runTool("/usr/bin/isoinfo", ["-d", "-i", iso])
        #expect(pvd.contains("Volume id: \(files.volumeLabel)\n"), "\(pvd)")
        #expect(pvd.contains("Rock Ridge signatures version"), "\(pvd)")
        #expect(pvd.contains("Joliet with UCS level"), "\(pvd)")
        let listed = try runTool("/usr/bin/isoinfo", ["-R", "-f", "-i", iso]).split(separator: "\n").map(String.init)
        for f in files.files {
            #expect(listed.contains("/" + f.path), "\(f.path) not in \(listed)")
            let back = try runTool("/usr/bin/isoinfo", ["-R", "-i", iso, "-x", "/" + f.path])
            #expect(Array(back.utf8) == f.contents, "\(f.path) reads back differently")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["seed.iso"], "staging files were left behind")
    }

    @Test func aSeedIsReplacedWhole() async throws {
        let dir = try scratchDirectory("seed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try CloudInitSeed(environment: ProcessInfo.processInfo.environment)
        let iso = dir + "/seed.iso"
        try await writer.write(try SeedCase.all[0].files(), to: iso)
        try await writer.write(try CloudInitFiles(flavor: .configDrive, instanceID: "i2", hostname: "second", userData: nil, networkConfig: nil), to: iso)
        #expect(try runTool("/usr/bin/isoinfo", ["-d", "-i", iso]).contains("Volume id: config-2\n"))
        let meta = try runTool("/usr/bin/isoinfo", ["-R", "-i", iso, "-x", "/openstack/latest/meta_data.json"])
        #expect(meta.contains("\"hostname\" : \"second\""), "\(meta)")
    }

    /// genisoimage's own words reach the error, and nothing half-written stays.
    @Test func failuresCarryWhatGenisoimageSaid() async throws {
        let dir = try scratchDirectory("seed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try CloudInitSeed(environment: ProcessInfo.processInfo.environment)
        let files = try SeedCase.all[1].files()
        do {
            try await writer.write(files, to: dir + "/missing/seed.iso")
            Issue.record("a seed in a missing directory was written")
        } catch {
            #expect(error.code == .io || error.code == .tool, "\(error)")
            #expect(error.description.contains("missing"), "\(error)")
        }
        // The tool itself refusing: an option genisoimage rejects, through a wrapper.
        let wrapper = dir + "/genisoimage"
        try "#!/bin/sh\nexec /usr/bin/genisoimage -no-such-option \"$@\"\n".write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        do {
            try await CloudInitSeed(environment: ["PATH": dir + ":/usr/bin"]).write(files, to: dir + "/seed.iso")
            Issue.record("a failing genisoimage produced a seed")
        } catch {
            #expect(error.code == .tool, "\(error)")
            #expect(error.description.contains("-no-such-option"), "\(error)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["genisoimage"], "a failed write left files behind")
    }

    @Test func aStuckGenisoimageIsKilledAtTheDeadline() async throws {
        let dir = try scratchDirectory("seed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "#!/bin/sh\nexec sleep 30\n".write(toFile: dir + "/genisoimage", atomically: true, encoding: .utf8)
        chmod(dir + "/genisoimage", 0o755)
        let writer = CloudInitSeed(executable: dir + "/genisoimage", timeoutSeconds: 0.5)
        let start = ContinuousClock.now
        let files = try SeedCase.all[1].files()
        do {
            try await writer.write(files, to: dir + "/seed.iso")
            Issue.record("a stuck genisoimage succeeded")
        } catch {
            #expect(error.code == .timeout && error.description.contains("killed"), "\(error)")
        }
        #expect(ContinuousClock.now - start < .seconds(20))
    }

    @Test func aMissingGenisoimageIsNamed() {
        do {
            _ = try CloudInitSeed(environment: ["PATH": "/nonexistent"])
            Issue.record("genisoimage found in /nonexistent")
        } catch {
            #expect(error.code == .notFound && error.description.contains("apt-get install genisoimage"), "\(error)")
        }
    }
}
