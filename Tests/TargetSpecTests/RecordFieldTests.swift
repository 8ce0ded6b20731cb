import Foundation
import Testing
import YAMLTree
@testable import TargetSpec

/// `spec.record` (issue 17): true, false or OnFailure, on a target, on an instance (which wins, as its
/// other lifecycle fields do), and the refusals apply gives with a place
/// (BadInputs/record-*.yaml hold the positioned ones).
@Suite struct RecordFieldTests {
    static func target(_ name: String = "cks", record: String? = nil, accel: String? = nil) -> String {
        """
        apiVersion: qemu.kubetarget.dev/v1alpha1
        kind: QemuVirtualTarget
        metadata: {name: \(name)}
        spec:
        \(record.map { "  record: \($0)\n" } ?? "")  qemuConfig:
            machine: lm3s6965evb
        \(accel.map { "    accel: \($0)\n" } ?? "")    devices: [{name: uart0, type: serial}]

        """
    }

    static func instance(_ name: String, of target: String, record: String?) -> String {
        """
        ---
        apiVersion: kubetarget.dev/v1alpha1
        kind: VirtualTargetInstance
        metadata: {name: \(name)}
        spec:
          targetRef: {name: \(target)}
        \(record.map { "  record: \($0)\n" } ?? "")
        """
    }

    /// A pool of target `cks`, as a second document.
    static let pool = """
        ---
        apiVersion: kubetarget.dev/v1alpha1
        kind: VirtualTargetPool
        metadata: {name: ci}
        spec:
          targetRef: {name: cks}
        """

    static func vmInstance(record: String) -> String {
        """
        apiVersion: kubetarget.dev/v1alpha1
        kind: VirtualTargetInstance
        metadata: {name: vm-run}
        spec:
          targetRef: {kind: VirtualMachine, name: testvm}
          record: \(record)
        """
    }

    static func runnables(_ text: String) throws -> [String: RunnableTarget] {
        let all = try Workload.instances(from: decode(text).resources)
        return Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
    }

    @Test(arguments: [("true", Recording.always), ("false", .off), ("True", .always), ("FALSE", .off), ("OnFailure", .onFailure),
                      ("Always", .always), ("Never", .off)])
    func aTargetsRecordIsTrueFalseOrOnFailure(_ written: String, _ value: Recording) throws {
        let r = try Self.runnables(Self.target(record: written))
        #expect(r["cks"]?.lifecycle.record?.value == value)
        #expect(r["cks"]?.lifecycle.records == (value != .off))
        #expect(r["cks"]?.lifecycle.record?.path == "spec.record")
        #expect(r["cks"]?.lifecycle.record?.location?.line == 5)
    }

    @Test func withoutRecordNothingIsRecorded() throws {
        let r = try Self.runnables(Self.target())
        #expect(r["cks"]?.lifecycle.record == nil)
        #expect(r["cks"]?.lifecycle.records == false)
    }

    /// The instance's value wins either way; without one, the target's holds.
    @Test func anInstanceOverridesItsTargetsRecord() throws {
        let text = Self.target(record: "true")
            + Self.instance("off", of: "cks", record: "false")
            + Self.instance("inherits", of: "cks", record: nil)
            + "\n" + Self.target("plain").replacingOccurrences(of: "apiVersion", with: "---\napiVersion")
            + Self.instance("on", of: "plain", record: "true")
            + Self.instance("failures", of: "cks", record: "OnFailure")
        let r = try Self.runnables(text)
        #expect(r["off"]?.lifecycle.records == false)
        #expect(r["inherits"]?.lifecycle.record?.value == .always)
        #expect(r["on"]?.lifecycle.record?.value == .always)
        #expect(r["failures"]?.lifecycle.record?.value == .onFailure)
        #expect(r["on"]?.lifecycle.record?.location?.file == "in.yaml")
    }

    /// `accel: auto` and `tcg` record (auto follows the host as `run --record` does); kvm is refused.
    @Test(arguments: ["auto", "tcg"])
    func accelAutoAndTcgAreRecorded(_ accel: String) throws {
        let r = try Self.runnables(Self.target(record: "true", accel: accel))
        #expect(r["cks"]?.lifecycle.records == true)
    }

    /// OnFailure records as true does, so it is refused where true is.
    @Test func onFailureIsRefusedWhereTrueIs() throws {
        #expect(throws: DiagnosticError.self) { try Workload.instances(from: decode(Self.target(record: "OnFailure") + Self.pool).resources) }
        let vm = Self.vmInstance(record: "OnFailure")
        #expect(throws: DiagnosticError.self) { try decode(vm) }
    }

    /// `record: false` asks for nothing, so nothing is refused.
    @Test func recordFalseIsNeverRefused() throws {
        #expect(try Workload.instances(from: decode(Self.target(record: "false") + Self.pool).resources).isEmpty)
        let vm = Self.vmInstance(record: "false")
        #expect(throws: Never.self) { try decode(vm) }
    }

    @Test func theRefusalsSayWhatWouldBeValid() throws {
        do {
            _ = try decode(Self.target(record: "[yes]"))
            Issue.record("accepted a list")
        } catch let e as DiagnosticError {
            #expect(e.errors.map(\.description).contains { $0.hasPrefix("in.yaml:5:11: error: spec.record: expected true (or Always), false (or Never) or OnFailure") }, "\(e.errors)")
        }
        do {
            _ = try Self.runnables(Self.target(record: "true").replacingOccurrences(of: "lm3s6965evb", with: "pc\n    accel: kvm")
                                       .replacingOccurrences(of: "spec:\n", with: "spec:\n  architecture: x86_64\n"))
            Issue.record("accepted record with accel kvm")
        } catch let e as DiagnosticError {
            let said = e.errors.map(\.description)
            #expect(said.contains { $0.contains("spec.record: QEMU records only under tcg") && $0.contains("set it to tcg or auto, or remove record") }, "\(said)")
        }
    }
}
