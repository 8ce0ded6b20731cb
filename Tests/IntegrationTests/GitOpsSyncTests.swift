import Foundation
import Testing

/// `vtarget sync`, `diff` and `apply --prune -l` against a real supervisor
/// (and, for --watch, real instances that restart).
@Suite(.serialized) struct GitOpsSyncTests {
    static func configMap(_ name: String, value: String = "v1", labels: String = "{}") -> String {
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \(name), labels: \(labels)}\ndata: {k: \(value)}\n"
    }

    func write(_ text: String, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    func configMaps(_ f: SupervisorFixture) throws -> [String] {
        try f.vt(["get", "configmaps", "-o", "name"]).stdout.split(separator: "\n").map(String.init).sorted()
    }

    @Test func syncCreatesReportsPrunesAndDryRunChangesNothing() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let dir = f.work + "/repo"
        try write(Self.configMap("one"), dir + "/one.yaml")
        try write(Self.configMap("two"), dir + "/sub/two.yaml")

        var r = try f.vt(["sync", dir, "-R", "--dry-run"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("configmap/one created (dry run): the supervisor has no ConfigMap of that name"), "\(r.stdout)")
        #expect(r.stdout.contains("configmap/two created (dry run)"), "\(r.stdout)")
        #expect(try configMaps(f).isEmpty)

        // Without -R only the top level.
        r = try f.vt(["sync", dir])
        #expect(r.code == 0 && r.stdout == "configmap/one created\n", "\(r.stdout) \(r.stderr)")
        r = try f.vt(["sync", dir, "-R"])
        #expect(r.stdout == "configmap/one unchanged\nconfigmap/two created\n", "\(r.stdout) \(r.stderr)")
        r = try f.vt(["get", "configmap", "one", "-o", "yaml"])
        #expect(r.stdout.contains("vtarget.dev/managed-by-sync: \(realpath(dir))"), "\(r.stdout)")

        // By hand: never pruned.
        try write(Self.configMap("by-hand"), f.work + "/by-hand.yaml")
        #expect(try f.vt(["apply", "-f", f.work + "/by-hand.yaml"]).code == 0)

        try FileManager.default.removeItem(atPath: dir + "/sub/two.yaml")
        r = try f.vt(["sync", dir, "-R", "--prune", "--dry-run"])
        #expect(r.stdout.contains("configmap/two pruned (dry run): sync applied it from \(realpath(dir))"), "\(r.stdout)")
        #expect(try configMaps(f) == ["configmap/by-hand", "configmap/one", "configmap/two"])
        // Without --prune nothing goes.
        r = try f.vt(["sync", dir, "-R"])
        #expect(r.stdout == "configmap/one unchanged\n", "\(r.stdout)")
        r = try f.vt(["sync", dir, "-R", "--prune"])
        #expect(r.code == 0 && r.stdout == "configmap/one unchanged\nconfigmap/two pruned\n", "\(r.stdout) \(r.stderr)")
        #expect(try configMaps(f) == ["configmap/by-hand", "configmap/one"])

        // Another spelling of the same directory is the same owner.
        try FileManager.default.removeItem(atPath: dir + "/one.yaml")
        r = try f.vt(["sync", dir + "/sub/..", "--prune"])
        #expect(r.code == 0 && r.stdout == "configmap/one pruned\n", "\(r.stdout) \(r.stderr)")
        #expect(try configMaps(f) == ["configmap/by-hand"])
    }

    @Test func aDirectoryThatFailsValidationChangesNothing() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let dir = f.work + "/repo"
        try write(Self.configMap("one"), dir + "/one.yaml")
        #expect(try f.vt(["sync", dir]).code == 0)
        try write(Self.configMap("one", value: "v2"), dir + "/one.yaml")
        try write(Self.configMap("three"), dir + "/three.yaml")
        try write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\ndata: {k: v}\n", dir + "/zz-bad.yaml")
        let r = try f.vt(["sync", dir, "--prune"])
        #expect(r.code == 2, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("zz-bad.yaml:3:"), "\(r.stderr)")
        #expect(r.stderr.contains("metadata.name"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(try configMaps(f) == ["configmap/one"])
        #expect(try f.vt(["get", "configmap", "one", "-o", "yaml"]).stdout.contains("k: v1"))

        // A reference the supervisor refuses (a pool of a target nobody has): 422, nothing stored, the file's position.
        try FileManager.default.removeItem(atPath: dir + "/zz-bad.yaml")
        try write("apiVersion: kubetarget.dev/v1alpha1\nkind: VirtualTargetPool\nmetadata: {name: p}\nspec:\n  targetRef: {name: nobody}\n  minReady: 1\n  maxInstances: 1\n",
                  dir + "/pool.yaml")
        let s = try f.vt(["sync", dir, "--prune"])
        #expect(s.code == 2, "\(s.stdout) \(s.stderr)")
        #expect(s.stderr.contains("pool.yaml:"), "\(s.stderr)")
        #expect(try configMaps(f) == ["configmap/one"])
    }

    @Test func diffExitCodesAndOutput() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let file = f.work + "/cm.yaml"
        try write(Self.configMap("one") + "---\n" + Self.configMap("two"), file)
        // No supervisor yet: everything is new, and none is started.
        var r = try f.vt(["diff", "-f", file])
        #expect(r.code == 1, "\(r.stderr)")
        #expect(r.stdout.contains("--- live/ConfigMap/default/one\n+++ merged/ConfigMap/default/one\n@@ -0,0 ") && r.stdout.contains("\n+apiVersion: v1\n"), "\(r.stdout)")
        #expect(f.supervisorPID() == nil || kill(f.supervisorPID()!, 0) != 0)

        #expect(try f.vt(["apply", "-f", file]).code == 0)
        r = try f.vt(["diff", "-f", file])
        #expect(r.code == 0 && r.stdout.isEmpty, "\(r.stdout) \(r.stderr)")

        try write(Self.configMap("one", value: "v2") + "---\n" + Self.configMap("two"), file)
        r = try f.vt(["diff", "-f", file])
        #expect(r.code == 1)
        #expect(r.stdout.contains("--- live/ConfigMap/default/one\n+++ merged/ConfigMap/default/one\n"), "\(r.stdout)")
        #expect(r.stdout.contains("\n-  k: v1\n+  k: v2\n"), "\(r.stdout)")
        #expect(!r.stdout.contains("ConfigMap/default/two"), "\(r.stdout)")
        // diff changed nothing.
        #expect(try f.vt(["get", "configmap", "one", "-o", "yaml"]).stdout.contains("k: v1"))

        try write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: [oops]\n", file)
        r = try f.vt(["diff", "-f", file])
        #expect(r.code == 2, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("cm.yaml:4:"), "\(r.stderr)")
    }

    @Test func applyPruneDeletesWhatMatchesAndIsNotInTheInput() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let all = f.work + "/all.yaml", some = f.work + "/some.yaml"
        try write([Self.configMap("a", labels: "{app: x}"), Self.configMap("b", labels: "{app: x}"), Self.configMap("c", labels: "{app: y}")]
                    .joined(separator: "---\n"), all)
        try write(Self.configMap("a", labels: "{app: x}") + "---\n" + Self.configMap("d", labels: "{app: y}"), some)
        #expect(try f.vt(["apply", "-f", all]).code == 0)

        var r = try f.vt(["apply", "-f", some, "--prune"])
        #expect(r.code == 2 && r.stderr.contains("--prune needs -l"), "\(r.stderr)")
        r = try f.vt(["apply", "-f", some, "--prune", "-l", "app=x"])
        #expect(r.code == 0, "\(r.stderr)")
        // -l also narrows the input (d has app=y), as in kubectl.
        #expect(r.stdout == "configmap/a unchanged\nconfigmap/b pruned\n", "\(r.stdout)")
        #expect(try configMaps(f) == ["configmap/a", "configmap/c"])
        r = try f.vt(["apply", "-f", some, "-l", "app=z"])
        #expect(r.code == 2 && r.stderr.contains("match -l app=z"), "\(r.stderr)")
        r = try f.vt(["apply", "-f", some, "--prune", "-l", "app in (x"])
        #expect(r.code == 2, "\(r.stderr)")
    }

    /// The watched directory: add, change, rename, break, fix and delete
    /// files; the supervisor follows each within a second or so.
    @Test func watchFollowsTheDirectory() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        let dir = f.work + "/repo"
        try FileManager.default.createDirectory(atPath: dir + "/boards", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: f.firmwareMap, toPath: dir + "/firmware.yaml")
        let board = try String(contentsOfFile: f.targets(["a"]), encoding: .utf8)
        try write(board, dir + "/boards/a.yaml")
        // By hand, outside the directory: sync must never prune it.
        #expect(try f.vt(["apply", "-f", f.targets(["manual"]), "-f", f.firmwareMap]).code == 0)

        let out = f.work + "/watch.out", err = f.work + "/watch.err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: vtarget)
        p.arguments = ["sync", dir, "-R", "--prune", "--watch"]
        p.environment = ProcessInfo.processInfo.environment.merging(f.environment) { $1 }
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        func printed() -> String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
        func complained() -> String { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }
        func uid(_ items: [[String: Any]], _ name: String) -> String? {
            items.first { f.name($0) == name }.flatMap { ($0["metadata"] as? [String: Any])?["uid"] as? String }
        }
        func running(_ names: Set<String>) -> ([[String: Any]]) -> Bool {
            { items in Set(items.map(f.name)) == names && items.allSatisfy { f.status($0)["phase"] as? String == "Running" } }
        }

        var items = try f.waitFor("a and manual running", running(["a", "manual"]))
        #expect(printed().contains("qemuvirtualtarget.qemu.kubetarget.dev/a created"), "\(printed())")
        let uidA = uid(items, "a")

        // Add: a new file in a new subdirectory.
        var start = Date()
        try FileManager.default.createDirectory(atPath: dir + "/boards/more", withIntermediateDirectories: true)
        try write(try String(contentsOfFile: f.targets(["b"]), encoding: .utf8), dir + "/boards/more/b.yaml")
        items = try f.waitFor("b added", seconds: 15) { items in uid(items, "b") != nil }
        print("sync --watch: a new file to its instance created: \(Int(Date().timeIntervalSince(start) * 1000)) ms")
        items = try f.waitFor("a, b and manual running", running(["a", "b", "manual"]))
        let uidB = uid(items, "b")

        // Change: a's spec → a restarts.
        start = Date()
        try write(board.replacingOccurrences(of: "timeout: 20s", with: "timeout: 25s"), dir + "/boards/a.yaml")
        items = try f.waitFor("a restarted", seconds: 15) { items in uid(items, "a").map { $0 != uidA } ?? false }
        print("sync --watch: a changed file to its instance restarted: \(Int(Date().timeIntervalSince(start) * 1000)) ms")
        #expect(printed().contains("qemuvirtualtarget.qemu.kubetarget.dev/a configured"), "\(printed())")

        // Rename: the same object from another file in the same directory is unchanged (a move to
        // another directory is a change: relative paths start from the file's directory).
        try FileManager.default.moveItem(atPath: dir + "/boards/more/b.yaml", toPath: dir + "/boards/more/b-renamed.yaml")
        usleep(1_500_000)
        items = try f.instances(["-A"])
        #expect(uid(items, "b") == uidB, "b must not restart when only its file is renamed")

        // Broken: a bad file and a deletion in the same burst change nothing; the error says where.
        try write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: {k: [1]}\n", dir + "/broken.yaml")
        try FileManager.default.removeItem(atPath: dir + "/boards/more/b-renamed.yaml")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && !complained().contains("broken.yaml:5:") { usleep(100_000) }
        #expect(complained().contains("broken.yaml:5:"), "\(complained())")
        #expect(complained().contains("nothing changed"), "\(complained())")
        usleep(500_000)
        items = try f.instances(["-A"])
        #expect(uid(items, "b") == uidB, "a directory that fails validation changes nothing")

        // Fixed: b (its file gone meanwhile) is pruned; manual stays.
        try FileManager.default.removeItem(atPath: dir + "/broken.yaml")
        items = try f.waitFor("b pruned", seconds: 15) { items in uid(items, "b") == nil }
        #expect(printed().contains("qemuvirtualtarget.qemu.kubetarget.dev/b pruned"), "\(printed())")

        // Delete: a's file goes, a goes.
        try FileManager.default.removeItem(atPath: dir + "/boards/a.yaml")
        items = try f.waitFor("a pruned", seconds: 15) { items in Set(items.map(f.name)) == ["manual"] }
        #expect(uid(items, "manual") != nil, "what apply made is never pruned")

        // SIGTERM: a clean end.
        p.terminate()
        let end = Date().addingTimeInterval(5)
        while p.isRunning && Date() < end { usleep(50_000) }
        #expect(!p.isRunning, "sync --watch did not end on SIGTERM")
        if !p.isRunning { #expect(p.terminationStatus == 0 && p.terminationReason == .exit, "\(complained())") }
        #expect(try f.vt(["get", "configmaps", "-o", "name"]).stdout.contains("lm3s6965evb-firmware"))
    }
}

private func realpath(_ path: String) -> String {
    guard let p = Foundation.realpath(path, nil) else { return path }
    defer { free(p) }
    return String(cString: p)
}
