import Foundation
import MachineCatalog
import TestSupport
import Testing
import YAMLTree
@testable import TargetSpec

/// Decoding grows linearly with the input. A ConfigMap of n keys once took
/// n² steps (the parser's duplicate-key check and copies of each collection
/// on every append, the reader's unknown-key check): 10k keys took 15 s and
/// 20k 48 s in a debug build (issue 14: 1.7 s and, for 40k, 26.8 s in a
/// release build); now 50k take about half a second in a debug build.
///
/// What is asserted is the growth, not a time: the input four times larger
/// must take less than nine times as long (linear is 4, quadratic 16), the
/// best of two runs each. A bound in seconds failed on a loaded CI machine
/// for reasons that had nothing to do with the code; a ratio measured in the
/// same test does not depend on how fast the machine is.
@Suite struct ScaleTests {
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// The best of two runs of `body(n)` and of `body(4n)`, and their ratio.
    static func growth(_ n: Int, _ body: (Int) throws -> Void) rethrows -> (small: Double, large: Double, ratio: Double) {
        let small = try (0..<2).map { _ in try seconds { try body(n) } }.min()!
        let large = try (0..<2).map { _ in try seconds { try body(4 * n) } }.min()!
        print("scale: n \(n): \(small) s; 4n: \(large) s; ratio \(large / small)")
        return (small, large, large / small)
    }

    @Test func aConfigMapsKeysDecodeInLinearTime() throws {
        func decode(_ n: Int) throws {
            var text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n"
            for i in 0..<n { text += "  key-\(i): value \(i)\n" }
            let decoded = try ResourceDecoder(catalog: MachineCatalog()).decode([SourceFile(path: "big.yaml", directory: "/", bytes: Array(text.utf8))])
            guard case .configMap(let map)? = decoded.resources.first else { Issue.record("no ConfigMap"); return }
            #expect(map.keyOrder.count == n && map.entries["key-\(n - 1)"] == Array("value \(n - 1)".utf8))
        }
        let g = try Self.growth(12_500, decode)
        #expect(g.ratio < 9, "12.5k keys took \(g.small) s, 50k took \(g.large) s")
    }

    /// The supervisor decodes every resource of a namespace on each apply and
    /// delete. Putting instances in input order once looked each up in a list
    /// for every comparison: 5,000 targets took 5.7 s here, now 0.75 s.
    @Test func targetsWorkOutTheirInstancesInLinearTime() throws {
        let catalog = try builtInCatalog()
        func work(_ n: Int) throws {
            var text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fw}\ndata: {firmware.elf: x}\n"
            for i in 0..<n {
                text += """
                    ---
                    apiVersion: qemu.kubetarget.dev/v1alpha1
                    kind: QemuVirtualTarget
                    metadata: {name: t\(i)}
                    spec:
                      qemuConfig:
                        machine: lm3s6965evb
                        drives: [{name: firmware, type: pflash, source: {configMap: {name: fw}}}]
                        devices: [{name: uart0, type: serial}]

                    """
            }
            let decoded = try ResourceDecoder(catalog: catalog).decode([SourceFile(path: "many.yaml", directory: "/", bytes: Array(text.utf8))])
            let runs = try Workload.instances(from: decoded.resources)
            #expect(runs.count == n && runs.first?.name == "t0" && runs.last?.name == "t\(n - 1)", "in the order written")
        }
        let g = try Self.growth(1_250, work)
        #expect(g.ratio < 9, "1,250 targets took \(g.small) s, 5,000 took \(g.large) s")
    }
}
