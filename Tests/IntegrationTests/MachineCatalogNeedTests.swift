import Foundation
import Testing
import TestSupport
import MachineCatalog
import TargetSpec
import YAMLTree

/// Only boards are decoded against the machine profiles, so an input that
/// cannot hold one (a VM's) never reads them.
@Suite struct MachineCatalogNeedTests {
    func files(_ texts: String...) -> [SourceFile] {
        texts.map { SourceFile(path: "a.yaml", directory: "/", bytes: Array($0.utf8)) }
    }

    @Test func onlyInputsThatMayHoldABoardNeedTheCatalog() {
        #expect(ResourceDecoder.mayNameMachines(files("apiVersion: qemu.kubetarget.dev/v1alpha1\nkind: QemuVirtualTarget\n")))
        #expect(!ResourceDecoder.mayNameMachines(files("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n")))
        #expect(!ResourceDecoder.mayNameMachines(files("kind: VirtualMachine\n", "kind: ConfigMap\n")))
        #expect(ResourceDecoder.mayNameMachines(files("kind: VirtualMachine\n", "kind: QemuVirtualTarget\n")), "any file of the input")
        #expect(ResourceDecoder.mayNameMachines(files("kind: \"Qemu\\x56irtualTarget\"\n")), "an escape could spell the kind")
        #expect(ResourceDecoder.mayNameMachines(files("{\"kind\": \"Qemu\\u0056irtualTarget\"}")), "so could JSON's")
        #expect(!ResourceDecoder.mayNameMachines([]))
    }

    /// The escape is no theory: it decodes as a board, against the catalog.
    @Test func anEscapedKindIsABoard() throws {
        let text = "apiVersion: qemu.kubetarget.dev/v1alpha1\nkind: \"Qemu\\x56irtualTarget\"\nmetadata: {name: b}\nspec: {qemuConfig: {machine: no-such-board}}\n"
        #expect(throws: DiagnosticError.self) { try ResourceDecoder(catalog: MachineCatalog()).decode(files(text)) }
    }

    /// With a broken profile among the machine directories, VMs still
    /// decode; a board's input reads the profiles and names the broken file.
    @Test func aBrokenProfileStopsBoardsOnly() throws {
        let dir = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let machines = dir + "/machines"
        try FileManager.default.createDirectory(atPath: machines, withIntermediateDirectories: true)
        try "apiVersion: v1\nkind: MachineProfile\nmetadata: {name: broken\n".write(toFile: machines + "/broken.yaml", atomically: true, encoding: .utf8)
        for vm in ["examples/kubevirt-vm.yaml", "examples/viti-machine.yaml"] {
            let r = try shell("VTARGET_MACHINES=\(machines) \(vtarget) render --for kubernetes -f \(vm)", runtime: dir)
            #expect(r.code == 0, "\(vm): \(r.stderr)")
        }
        let board = try shell("VTARGET_MACHINES=\(machines) \(vtarget) render --for kubernetes -f examples/lm3s6965evb.yaml", runtime: dir)
        #expect(board.code == 2 && board.stderr.contains("broken.yaml"), "\(board.code) \(board.stderr)")
    }
}
