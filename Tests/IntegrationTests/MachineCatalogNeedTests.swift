import Foundation
import Testing
import TestSupport
import MachineCatalog
import TargetSpec
import TargetRuntime
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

    /// Without profiles of the user's, the built-in ones are parsed as looked
    /// up, and a name from the input is a file name, never a path; a user's
    /// profile still replaces a built-in one (all are read then).
    @Test func builtInProfilesAreReadAsNeededAndUsersReplaceThem() throws {
        let dir = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let executable = repoRoot + "/.build/debug/vtarget"
        let lazy = try InputFiles.loadCatalog(environment: ["XDG_CONFIG_HOME": dir + "/config"], executable: executable)
        #expect(lazy.lookup("stm32-p103")?.qemuMachine == "stm32vldiscovery")
        #expect(lazy.lookup("../machines/stm32-p103") == nil && lazy.lookup("/etc/passwd") == nil)
        #expect(lazy.names == (try builtInCatalog()).names)
        let machines = dir + "/machines"
        try FileManager.default.createDirectory(atPath: machines, withIntermediateDirectories: true)
        let own = try String(contentsOfFile: repoRoot + "/machines/stm32vldiscovery.yaml", encoding: .utf8)
            .replacingOccurrences(of: "description: ", with: "description: mine, ")
        try own.write(toFile: machines + "/mine.yaml", atomically: true, encoding: .utf8)
        let mine = try InputFiles.loadCatalog(environment: ["XDG_CONFIG_HOME": dir + "/config", "VTARGET_MACHINES": machines], executable: executable)
        #expect(mine.lookup("stm32vldiscovery")?.summary.hasPrefix("mine, ") == true)
        #expect(mine.lookup("stm32-p103")?.summary.hasPrefix("Olimex") == true, "a built-in based on the user's")
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
