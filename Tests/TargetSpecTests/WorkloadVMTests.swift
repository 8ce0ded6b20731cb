import Testing
import TargetSpec
import TestSupport
import YAMLTree

/// VMs among the instances: runStrategy onto restart policies, and one
/// instance name per namespace whatever the kind.
@Suite struct WorkloadVMTests {
    static func vm(_ name: String, kind: String = "VirtualMachine", runStrategy: String = "Always") -> String {
        let strategy = kind == "VirtualMachine" ? "  runStrategy: \(runStrategy)\n" : ""
        let template = kind == "VirtualMachine" ? "  template:\n    spec:\n" : ""
        let indent = kind == "VirtualMachine" ? "      " : "  "
        return """
            apiVersion: kubevirt.io/v1
            kind: \(kind)
            metadata: {name: \(name)}
            spec:
            \(strategy)\(template)\(indent)domain:
            \(indent)  memory: {guest: 128Mi}
            \(indent)  devices:
            \(indent)    disks: [{name: root, disk: {bus: virtio}}]
            \(indent)volumes: [{name: root, containerDisk: {image: "busybox:1"}}]

            """
    }

    static func decode(_ text: String) throws -> [Resource] {
        try ResourceDecoder(catalog: builtInCatalog()).decode([SourceFile(path: "vms.yaml", directory: "/", bytes: Array(text.utf8))]).resources
    }

    @Test(arguments: [("Always", RestartPolicy.Always), ("RerunOnFailure", .OnFailure), ("Once", .Never), ("Halted", .Never), ("Manual", .Never)])
    func runStrategyIsARestartPolicy(_ strategy: String, _ policy: RestartPolicy) throws {
        let vms = try Workload.vms(from: Self.decode(Self.vm("a", runStrategy: strategy)), boards: [])
        #expect(vms.count == 1 && vms[0].name == "a" && vms[0].namespace == "default" && vms[0].lifecycle.restartPolicy == policy)
    }

    @Test func aVMIRunsOnce() throws {
        let vms = try Workload.vms(from: Self.decode(Self.vm("i", kind: "VirtualMachineInstance")), boards: [])
        #expect(vms.map(\.name) == ["i"] && vms[0].lifecycle.restartPolicy == .Never)
    }

    @Test func aVMAndABoardOfOneNameAreRefused() throws {
        let text = targetYAML("same", """
            machine: lm3s6965evb
            drives: [{name: firmware, type: pflash, source: {hostPath: {path: /fw.elf}}}]
            """) + "\n---\n" + Self.vm("same")
        let resources = try ResourceDecoder(catalog: builtInCatalog(), options: DecodeOptions(allowHostPaths: true))
            .decode([SourceFile(path: "vms.yaml", directory: "/", bytes: Array(text.utf8))]).resources
        let boards = try Workload.instances(from: resources)
        #expect(throws: DiagnosticError.self) { try Workload.vms(from: resources, boards: boards) }
        do { _ = try Workload.vms(from: resources, boards: boards) } catch {
            #expect(error.diagnostics.first?.description.contains("another instance is already named \"same\"") == true, "\(error)")
            #expect(error.diagnostics.first?.location?.line == 11, "\(error)")
        }
    }
}
