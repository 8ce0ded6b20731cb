import Foundation
import Testing
import TestSupport

/// Issue 14.11 and 14.15: what the user names with -f, -R and --from-file
/// that cannot be read is bad input (exit 2, named), and nothing of it hangs.
/// Each command runs under `timeout 20`, so a hang fails as exit 124.
@Suite struct InputFileTests {
    func scratch() throws -> String {
        let dir = "/tmp/vt-in-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func aSymlinkLoopUnderRecursiveIsNamedNotWalkedForever() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/a/b", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/a/b/up", withDestinationPath: "..")
        try FileManager.default.copyItem(atPath: repoRoot + "/examples/lm3s6965evb.yaml", toPath: dir + "/a/t.yaml")
        let r = try shell("timeout 20 \(vtarget) render -R -f \(dir)", runtime: makeRuntimeDir())
        #expect(r.code == 2, "\(r.code) \(r.stderr)")
        #expect(r.stderr.contains("\(dir)/a/b/up: symlink loop: it is the directory \(dir)/a again"), "\(r.stderr)")

        // The same tree without -R reads only the top level and is not a loop.
        let flat = try shell("timeout 20 \(vtarget) render -f \(dir)", runtime: makeRuntimeDir())
        #expect(flat.code != 124 && !flat.stderr.contains("symlink loop"), "\(flat.code) \(flat.stderr)")
    }

    @Test func unreadableInputsExitTwoAndNeverBlock() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(mkfifo(dir + "/fifo.yaml", 0o600) == 0)
        let cases: [(String, String)] = [
            ("render -f \(dir)/missing.yaml", "\(dir)/missing.yaml: no such file or directory"),
            ("render -f \(dir)/fifo.yaml", "cannot read \(dir)/fifo.yaml: not a regular file (a FIFO)"),
            ("render -f /dev/zero", "cannot read /dev/zero: not a regular file (a character device)"),
            ("create configmap m --from-file=k=\(dir)/missing --dry-run=client -o yaml", "cannot read \(dir)/missing: no such file"),
            ("create configmap m --from-file=k=\(dir)/fifo.yaml --dry-run=client -o yaml", "not a regular file (a FIFO)"),
            ("create configmap m --from-file=k=/dev/zero --dry-run=client -o yaml", "not a regular file (a character device)"),
        ]
        for (args, message) in cases {
            let r = try shell("timeout 20 \(vtarget) \(args)", runtime: makeRuntimeDir())
            #expect(r.code == 2, "\(args): \(r.code) \(r.stderr)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        // A file there but not readable (root reads anything, so only as a user).
        if getuid() != 0 {
            try "x".write(toFile: dir + "/secret", atomically: true, encoding: .utf8)
            chmod(dir + "/secret", 0)
            let r = try shell("timeout 20 \(vtarget) create configmap m --from-file=\(dir)/secret --dry-run=client", runtime: makeRuntimeDir())
            #expect(r.code == 2 && r.stderr.contains("Permission denied"), "\(r.code) \(r.stderr)")
        }
    }
}
