import Testing
import TargetSpec
import TestSupport
import VMSpec
import YAMLTree

/// A VM named by a VirtualTargetPool or a VirtualTargetInstance runs only as
/// those instances: renamed to each, with the instance's readiness; what
/// names a VM that is not there, or a device a VM does not have, is refused
/// at its line.
@Suite struct WorkloadVMPoolTests {
    static let pool = """
        apiVersion: kubetarget.dev/v1alpha1
        kind: VirtualTargetPool
        metadata: {name: vms}
        spec:
          targetRef: {kind: VirtualMachine, name: a}
          readiness: {device: console, pattern: "ready", timeout: 90s}

        """

    static func instance(_ name: String, vm: String = "a", device: String = "console") -> String {
        """
        apiVersion: kubetarget.dev/v1alpha1
        kind: VirtualTargetInstance
        metadata: {name: \(name)}
        spec:
          targetRef: {kind: VirtualMachine, name: \(vm)}
          readiness: {device: \(device), pattern: "vtarget-guest: ready"}

        """
    }

    static func docs(_ parts: String...) -> String { parts.joined(separator: "---\n") }

    func diagnostics(_ text: String) -> [String] {
        do {
            _ = try Workload.vms(from: WorkloadVMTests.decode(text), boards: [])
            return []
        } catch let e as DiagnosticError {
            return e.diagnostics.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    @Test func aPooledVMDoesNotRunOnItsOwn() throws {
        let resources = try WorkloadVMTests.decode(Self.docs(WorkloadVMTests.vm("a"), Self.pool))
        #expect(try Workload.vms(from: resources, boards: []).isEmpty)
        guard case .pool(let p)? = resources.last else { Issue.record("no pool decoded"); return }
        #expect(p.targetKind == "VirtualMachine" && p.readiness?.device == "console" && p.readiness?.timeoutSeconds == 90)
        // Nor is it a board instance.
        #expect(try Workload.instances(from: resources).isEmpty)
    }

    @Test func aVMRunsAsEachInstanceOfIt() throws {
        let vms = try Workload.vms(from: WorkloadVMTests.decode(Self.docs(WorkloadVMTests.vm("a"), Self.instance("m1"), Self.instance("m2"))), boards: [])
        #expect(vms.map(\.name) == ["m1", "m2"] && vms.map(\.vm.metadata.name) == ["m1", "m2"])
        #expect(vms.allSatisfy { $0.lifecycle.readiness?.pattern == "vtarget-guest: ready" && $0.lifecycle.readiness?.device == "console" })
        #expect(vms.allSatisfy { $0.lifecycle.restartPolicy == .Always })
    }

    @Test func aMissingVMIsRefusedAtThePool() {
        let d = diagnostics(Self.pool)
        #expect(d.count == 1 && d[0].hasPrefix("vms.yaml:3:") && d[0].contains("VirtualMachine \"a\" is not among the inputs"), "\(d)")
        let i = diagnostics(Self.docs(WorkloadVMTests.vm("b"), Self.instance("m1", vm: "a")))
        #expect(i.count == 1 && i[0].contains("VirtualMachine \"a\" is not among the inputs") && i[0].contains("\"b\""), "\(i)")
    }

    @Test func aReadinessDeviceOtherThanTheConsoleIsRefused() {
        let d = diagnostics(Self.docs(WorkloadVMTests.vm("a"), Self.pool.replacingOccurrences(of: "device: console", with: "device: uart0")))
        #expect(d.count == 1 && d[0].hasPrefix("vms.yaml:") && d[0].contains("a VM's serial device is \"console\", not \"uart0\""), "\(d)")
        let i = diagnostics(Self.docs(WorkloadVMTests.vm("a"), Self.instance("m1", device: "ttyS0")))
        #expect(i.count == 1 && i[0].contains("not \"ttyS0\""), "\(i)")
    }

    @Test func membersThatWouldShareANamedVolumeAreRefused() {
        let vm = WorkloadVMTests.vm("a").replacingOccurrences(of: #"containerDisk: {image: "busybox:1"}"#, with: "persistentVolumeClaim: {claimName: data}")
        let d = diagnostics(Self.docs(vm, Self.pool + "  maxInstances: 2\n"))
        #expect(d.count == 1 && d[0].contains("spec.maxInstances") && d[0].contains("would share its volume \"data\""), "\(d)")
        #expect(diagnostics(Self.docs(vm, Self.pool + "  maxInstances: 1\n  minReady: 1\n")).isEmpty)
    }

    /// A VM with a DataVolume template and a claim of its own.
    static let vmWithTemplate = """
        apiVersion: kubevirt.io/v1
        kind: VirtualMachine
        metadata: {name: a}
        spec:
          runStrategy: Always
          dataVolumeTemplates:
            - metadata: {name: root}
              spec: {storage: {resources: {requests: {storage: 1Gi}}, storageClassName: fast}, source: {blank: {}}}
          template:
            spec:
              domain:
                memory: {guest: 128Mi}
              volumes:
                - {name: root, dataVolume: {name: root}}
                - {name: shared, persistentVolumeClaim: {claimName: shared}}

        """

    /// As each VM of a KubeVirt VirtualMachinePool gets its own DataVolumes,
    /// each instance of a VM gets its own of the volumes the VM makes; a
    /// claim of its own stays the one volume it names.
    @Test func eachInstanceMakesItsOwnOfItsVMsTemplates() throws {
        let vms = try Workload.vms(from: WorkloadVMTests.decode(Self.docs(Self.vmWithTemplate, Self.instance("m1"), Self.instance("m2"))), boards: [])
        #expect(vms.map(\.name) == ["m1", "m2"])
        for v in vms {
            #expect(v.vm.disks.map(\.source) == [
                .volume(name: "root-" + v.name, capacityBytes: 1 << 30, storageClass: "fast", content: .blank),
                .volume(name: "shared", capacityBytes: nil, storageClass: nil),
            ])
            #expect(v.vm.disks.map(\.owner) == [.instance, nil])
        }
        // The VM on its own keeps its template's name.
        let alone = try Workload.vms(from: WorkloadVMTests.decode(Self.vmWithTemplate), boards: [])
        #expect(alone.first?.vm.disks.first?.source == .volume(name: "root", capacityBytes: 1 << 30, storageClass: "fast", content: .blank))
        #expect(alone.first?.vm.disks.map(\.owner) == [.dataVolumeTemplate, nil])
    }

    /// A Viti Machine's disks are `<machine>-<disk>`: an instance's are `<instance>-<disk>`.
    @Test func aMachinesInstanceNamesItsDisksForItself() throws {
        let machine = """
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata: {name: m}
            spec:
              instanceType: small
              disks: [{name: data, size: 2Gi}]

            """
        let i = Self.instance("m1").replacingOccurrences(of: "kind: VirtualMachine, name: a", with: "kind: Machine, name: m")
        let vms = try Workload.vms(from: WorkloadVMTests.decode(Self.docs(machine, i)), boards: [])
        #expect(vms.map(\.name) == ["m1"])
        #expect(vms.first?.vm.disks.map(\.source) == [.volume(name: "m1-data", capacityBytes: 2 << 30, storageClass: nil)])
        let pool = Self.pool.replacingOccurrences(of: "kind: VirtualMachine, name: a", with: "kind: Machine, name: m") + "  maxInstances: 4\n"
        #expect(diagnostics(Self.docs(machine, pool)).isEmpty)
    }

    @Test func aPoolOfAVMWithTemplatesMayHaveManyMembers() {
        let claimless = Self.vmWithTemplate.replacingOccurrences(of: "        - {name: shared, persistentVolumeClaim: {claimName: shared}}\n", with: "")
        #expect(!claimless.contains("shared"))
        #expect(diagnostics(Self.docs(claimless, Self.pool + "  maxInstances: 3\n")).isEmpty)
        // The claim is still one file that members would share.
        let d = diagnostics(Self.docs(Self.vmWithTemplate, Self.pool + "  maxInstances: 3\n"))
        #expect(d.count == 1 && d[0].contains("would share its volume \"shared\"") && !d[0].contains("\"root\""), "\(d)")
    }

    /// `<template>-<member>` must still be a name: a pool's members are `<pool>-<5 characters>`.
    @Test func anInstanceVolumeNameTooLongIsRefusedAtThePoolOrInstance() {
        let claimless = Self.vmWithTemplate.replacingOccurrences(of: "        - {name: shared, persistentVolumeClaim: {claimName: shared}}\n", with: "")
        let long = String(repeating: "p", count: 53)  // root- + 53 + -xxxxx = 64
        let d = diagnostics(Self.docs(claimless, Self.pool.replacingOccurrences(of: "name: vms", with: "name: \(long)")))
        #expect(d.count == 1 && d[0].hasPrefix("vms.yaml:") && d[0].contains("metadata.name") && d[0].contains("a member's own volume for disk root")
                && d[0].contains("give the pool a shorter name"), "\(d)")
        #expect(diagnostics(Self.docs(claimless, Self.pool.replacingOccurrences(of: "name: vms", with: "name: \(long.dropLast())"))).isEmpty)
        let i = diagnostics(Self.docs(claimless, Self.instance(String(repeating: "i", count: 59))))
        #expect(i.count == 1 && i[0].contains("this instance's own volume for disk root would be named \"root-iii"), "\(i)")
    }

    @Test func anInstanceNamedAsAnotherVMIsRefused() {
        let d = diagnostics(Self.docs(WorkloadVMTests.vm("a"), WorkloadVMTests.vm("b"), Self.instance("b")))
        #expect(d.contains { $0.contains("another instance is already named \"b\"") }, "\(d)")
    }

    @Test func aTargetRefKindWithNoBackendIsRefused() {
        let d = diagnostics(Self.pool.replacingOccurrences(of: "kind: VirtualMachine,", with: "kind: DataVolume,"))
        #expect(d.contains { $0.hasPrefix("vms.yaml:5:") && $0.contains("valid: \"QemuVirtualTarget\", \"VirtualMachine\", \"Machine\"") }, "\(d)")
    }
}
