import Foundation
import MachineCatalog
import Testing
import YAMLTree
@testable import QEMULaunch
@testable import TargetSpec

/// A board's memory against the host's, by the same rule and words as a
/// VM's (`HostMemory`): more than MemTotal is refused at the field that set
/// it (spec.qemuConfig.memory, or the machine whose default it is); up to
/// it, with the host's memory unknown, or fixed by a small board, it plans.
@Suite struct BoardHostMemoryTests {
    static func target(memory: String?, machine: String = "q35") -> String {
        """
        apiVersion: qemu.kubetarget.dev/v1alpha1
        kind: QemuVirtualTarget
        metadata: {name: big}
        spec:
          qemuConfig:
            machine: \(machine)
        \(memory.map { "    memory: \($0)" } ?? "")
        """
    }

    static func refusal(_ text: String, hostBytes: UInt64?) -> [Diagnostic] {
        do {
            _ = try plans(text, file: "big.yaml", host: HostFacts(architecture: .x86_64, kvmUsable: false, memoryBytes: hostBytes))
            return []
        } catch let e as DiagnosticError {
            return e.diagnostics
        } catch {
            return [Diagnostic(.error, at: nil, field: nil, "\(error)")]
        }
    }

    @Test func memoryAboveTheHostsIsRefusedAtTheMemoryField() throws {
        let d = Self.refusal(Self.target(memory: "12Gi"), hostBytes: 8 << 30)
        #expect(d.count == 1)
        #expect(d.first?.field == "spec.qemuConfig.memory")
        #expect(d.first?.location == SourceLocation(file: "big.yaml", line: 7, column: 13))
        #expect(d.first?.message == "12Gi is more than this host's memory (8Gi, MemTotal in /proc/meminfo); give at most 8Gi, "
                + "less than that to leave room for the host")
        // MemTotal in kB: the valid most is rounded down to a whole Mi.
        let odd = Self.refusal(Self.target(memory: "12Gi"), hostBytes: 8_000_000 * 1024)
        #expect(odd.first?.message.contains("give at most 7812Mi") == true, "\(odd)")
    }

    /// The profile's default is the machine's choice: the error points there
    /// and says which field changes it.
    @Test func aDefaultAboveTheHostsIsRefusedAtTheMachine() throws {
        let d = Self.refusal(Self.target(memory: nil), hostBytes: 64 << 20)
        #expect(d.count == 1)
        #expect(d.first?.field == "spec.qemuConfig.machine")
        #expect(d.first?.location == SourceLocation(file: "big.yaml", line: 6, column: 14))
        #expect(d.first?.message.hasPrefix("machine \"q35\" gives the guest 128Mi unless spec.qemuConfig.memory says otherwise: "
                                           + "128Mi is more than this host's memory (64Mi,") == true, "\(d)")
    }

    @Test func memoryUpToTheHostsOrAnUnknownHostPlans() throws {
        for (memory, host) in [("8Gi", UInt64?(8 << 30)), ("8Gi", UInt64?(9 << 30)), ("16Gi", nil)] {
            let p = try plans(Self.target(memory: memory), file: "big.yaml",
                              host: HostFacts(architecture: .x86_64, kvmUsable: false, memoryBytes: host))
            #expect(p.first?.guestMemoryBytes == Quantity.parseBytes(memory), "\(memory) on \(String(describing: host))")
        }
    }
}
