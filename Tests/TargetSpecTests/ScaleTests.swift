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
@Suite struct ScaleTests {
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = Date()
        try body()
        return Date().timeIntervalSince(start)
    }

    @Test func aConfigMapOf50kKeysDecodesQuickly() throws {
        var text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n"
        for i in 0..<50_000 { text += "  key-\(i): value \(i)\n" }
        var decoded: DecodedResources?
        let took = try Self.seconds {
            decoded = try ResourceDecoder(catalog: MachineCatalog()).decode([SourceFile(path: "big.yaml", directory: "/", bytes: Array(text.utf8))])
        }
        guard case .configMap(let map)? = decoded?.resources.first else { Issue.record("no ConfigMap"); return }
        #expect(map.keyOrder.count == 50_000 && map.entries["key-49999"] == Array("value 49999".utf8))
        #expect(took < 3, "50k keys took \(took) s")
    }

    /// The supervisor decodes every resource of a namespace on each apply and
    /// delete. Putting instances in input order once looked each up in a list
    /// for every comparison: 5,000 targets took 5.7 s here, now 0.75 s.
    @Test func fiveThousandTargetsWorkOutTheirInstancesLinearly() throws {
        var text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fw}\ndata: {firmware.elf: x}\n"
        for i in 0..<5_000 {
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
        var runs: [RunnableTarget] = []
        let took = try Self.seconds {
            let decoded = try ResourceDecoder(catalog: builtInCatalog()).decode([SourceFile(path: "many.yaml", directory: "/", bytes: Array(text.utf8))])
            runs = try Workload.instances(from: decoded.resources)
        }
        #expect(runs.count == 5_000 && runs.first?.name == "t0" && runs.last?.name == "t4999", "in the order written")
        #expect(took < 3, "5,000 targets took \(took) s")
    }
}
