import DiskImages
import Foundation
import TestSupport
import Testing
import HostOS
import TargetRuntime

@Suite struct QemuImgTests {
    @Test func createInfoAndBacking() async throws {
        let dir = "/tmp/vt-img-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let img = try QemuImg(environment: ProcessInfo.processInfo.environment)
        try await img.create(path: dir + "/base.qcow2", format: .qcow2, size: 1 << 20)
        try await img.create(path: dir + "/top,1.qcow2", format: .qcow2, size: nil, backing: .init(path: dir + "/base.qcow2", format: .qcow2))
        let top = try await img.info(path: dir + "/top,1.qcow2")
        #expect(top.format == "qcow2")
        #expect(top.virtualSize == 1 << 20, "a backed image takes its backing file's size")
        #expect(top.backingFilename == dir + "/base.qcow2")
        #expect(top.backingFormat == "qcow2")
        #expect(top.snapshots == nil)
        let scratch = try await img.createSnapshotScratch(in: dir)
        #expect(scratch == dir + "/snapshot.qcow2")
        #expect(try await img.info(path: scratch).virtualSize == 64 << 20)
    }

    @Test func failuresCarryWhatQemuImgSaid() async throws {
        let img = try QemuImg(environment: ProcessInfo.processInfo.environment)
        do {
            _ = try await img.info(path: "/nonexistent/x.qcow2")
            Issue.record("info of a missing file succeeded")
        } catch {
            #expect(error.arguments.contains("/nonexistent/x.qcow2"))
            #expect(error.description.contains("No such file or directory"), "\(error)")
        }
        await #expect(throws: QemuImgError.self) {
            try await img.create(path: "/nonexistent/dir/x.qcow2", format: .raw, size: 4096)
        }
    }

    @Test func aStuckQemuImgIsKilledAtTheDeadline() async throws {
        // Opening a FIFO nobody writes to blocks: the deadline, not the tool, ends it.
        let fifo = "/tmp/vt-fifo-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        var stuck = try QemuImg(environment: ProcessInfo.processInfo.environment)
        stuck.timeoutSeconds = 0.3
        let start = ContinuousClock.now
        do {
            _ = try await stuck.info(path: fifo)
            Issue.record("a stuck qemu-img succeeded")
        } catch {
            #expect(error.reason.contains("killed"), "\(error)")
        }
        // Without the deadline it would wait forever; the margin is for a
        // loaded machine, where spawning alone can take seconds.
        #expect(ContinuousClock.now - start < .seconds(25))
    }

    /// A run whose empty disk qemu-img refuses fails (exit 1, not "bad
    /// input") and says what qemu-img said. The real qemu-img refuses: a
    /// wrapper first in PATH hands it an option it rejects.
    @Test func runFailsWithQemuImgsWords() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let work = "/tmp/vt-qimg-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try "#!/bin/sh\nexec /usr/bin/qemu-img \"$@\" -o cluster_size=1\n".write(toFile: work + "/qemu-img", atomically: true, encoding: .utf8)
        chmod(work + "/qemu-img", 0o755)
        let file = work + "/disk.yaml"
        try targetYAML("disk", """
            machine: pc
            drives: [{name: scratch, type: disk, source: {emptyDisk: {capacity: 1Gi}}}]
            """).write(toFile: file, atomically: true, encoding: .utf8)
        let r = try shell("PATH=\(work):$PATH \(vtarget) run -f \(file) --timeout 5s", runtime: runtime)
        #expect(r.code == 1, "\(r.stderr)")
        #expect(r.stderr.contains("qemu-img create") && r.stderr.contains("Cluster size must be a power of two"), "\(r.stderr)")
    }

    /// A size no disk could be is bad input, said where it is; nothing starts.
    @Test func anAbsurdCapacityIsBadInput() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        let file = "/tmp/vt-big-\(UInt32.random(in: 0...UInt32.max)).yaml"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try targetYAML("big", """
            machine: pc
            drives: [{name: huge, type: disk, source: {emptyDisk: {capacity: 9000000Ti}}}]
            """).write(toFile: file, atomically: true, encoding: .utf8)
        let r = try vt(["run", "-f", file, "--timeout", "5s"], runtime: runtime)
        #expect(r.code == 2, "\(r.stderr)")
        #expect(r.stderr.contains("\(file):7:") && r.stderr.contains("emptyDisk.capacity") && r.stderr.contains("maximum of 64Ti"), "\(r.stderr)")
    }
}
