import DiskImages
import Foundation
import MachineCatalog
import NIOPosix
import QEMULaunch
import QMP
import Sandbox
import TargetSpec
import TestSupport
import HostOS
import Testing
@testable import TargetRuntime

/// The planner's -blockdev nodes in a real QEMU, started as `run` starts it
/// (as root: images handed over as fds, QEMU as uid 65534).
@Suite(.serialized) struct BlockdevTests {
    @Test func readOnlyNodesAndTheScratchImageInARealQEMU() async throws {
        let runtime = makeRuntimeDir()
        chmod(runtime, 0o711)
        let instance = runtime + "/ro", qemuDir = instance + "/qemu"
        mkdir(instance, 0o711)
        mkdir(qemuDir, 0o700)
        let images = "/tmp/vt-ro-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: images) }
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: images + "/base,1.img"))
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: images + "/seed.iso"))
        let text = targetYAML("ro", """
            machine: pc
            drives:
              - {name: base, type: disk, format: raw, readonly: true, source: {hostPath: {path: "\(images)/base,1.img"}}}
              - {name: seed, type: cdrom, format: raw, source: {hostPath: {path: "\(images)/seed.iso"}}}
            """)
        let catalog = try builtInCatalog()
        let decoded = try ResourceDecoder(catalog: catalog, options: DecodeOptions(allowHostPaths: true))
            .decode([SourceFile(path: "ro.yaml", directory: "/", bytes: Array(text.utf8))])
        guard case .target(let t) = decoded.resources[0] else { return }
        let env = ProcessInfo.processInfo.environment
        let drives = try await DriveResolver(instanceDirectory: qemuDir, materialize: true, environment: env)
            .resolve(try Workload.instances(from: decoded.resources)[0]) { _ in nil }
        let scratch = try await QemuImg(environment: env).createSnapshotScratch(in: qemuDir)
        try QEMUSandbox.handOver(qemuDir)
        let plan = try LaunchPlanner(host: HostFacts(), options: LaunchOptions(passImagesAsFDs: isRoot, snapshotImage: scratch))
            .plan(t, profile: catalog.lookup("pc")!, drives: drives, instanceDirectory: qemuDir)
        let qemu = try #require(ExecutableSearch.find(plan.binary, environment: env))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let target = try await TargetProcess.spawn(plan: plan, directory: instance, qemuPath: qemu, sandbox: try await QEMUSandbox.policy(enabled: true, qemuDirectory: instance + "/qemu"))
        do {
            try await target.connect(group: group, startRunning: false, environment: env) { _, _ in }
            let qmp = try #require(target.qmp)
            let reply = try await qmp.execute("query-named-block-nodes", arguments: JSONValue.object(["flat": JSONValue.bool(true)]))
            guard case .array(let nodes) = reply else {
                Issue.record("no block nodes")
                return
            }
            var readOnly: [String: Bool] = [:]
            for n in nodes {
                if let name = n["node-name"]?.stringValue, case .bool(let ro)? = n["ro"] { readOnly[name] = ro }
            }
            #expect(readOnly == ["file-base": true, "fmt-base": true, "file-seed": true, "fmt-seed": true,
                                 "file-vt.snapshot": false, "fmt-vt.snapshot": false])
            // savevm finds the scratch node: the one writable image that can hold snapshots.
            #expect(try await qmp.hmp("savevm vt-ready") == "")
            #expect(try await qmp.hmp("info snapshots").contains("vt-ready"))
            #expect(try await qmp.hmp("loadvm vt-ready") == "")
        } catch {
            Issue.record("\(error)\n\(target.stderrText)")
        }
        _ = await target.stop()
        try await group.shutdownGracefully()
        let info = try await QemuImg(environment: env).info(path: scratch)
        #expect(info.snapshots?.map(\.name) == ["vt-ready"])
        #expect((info.snapshots?.first?.vmStateSize ?? 0) > 0)
        RuntimeDirectory.removeTree(runtime)
    }
}
