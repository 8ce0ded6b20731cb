import TestSupport
import Testing
import TargetSpec
import VMSpec

/// What a VM names for its instancetype, preference and class, as the
/// supervisor reads it to refuse deleting a type still in use.
@Suite struct ClusterTypeKeyTests {
    @Test func aVirtualMachineNamesItsInstancetypeAndPreferenceOfEitherScope() throws {
        let text = """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachine
            metadata: {name: a}
            spec:
              runStrategy: Halted
              instancetype: {name: it}
              preference: {name: p, kind: VirtualMachinePreference}
              template: {spec: {domain: {devices: {}}}}
            ---
            apiVersion: kubevirt.io/v1
            kind: VirtualMachine
            metadata: {name: b}
            spec:
              runStrategy: Halted
              template: {spec: {domain: {devices: {}}}}
            """
        let r = try ResourceDecoder(catalog: builtInCatalog()).decode([SourceFile(path: "v.yaml", directory: "/", bytes: Array(text.utf8))], resolvingVMs: false)
        let keys = r.resources.compactMap { res -> [VMTypeKey]? in
            if case .virtualMachine(let vm) = res { return vm.typeKeys }
            return nil
        }
        #expect(keys == [[VMTypeKey(kind: "VirtualMachineClusterInstancetype", name: "it"), VMTypeKey(kind: "VirtualMachinePreference", name: "p")], []])
        #expect(keys.first?.first?.description == "VirtualMachineClusterInstancetype \"it\"")
    }

    @Test func aMachineNamesItsClassAndWithoutOneTheSmallOne() throws {
        for (spec, name) in [("machineClass: large", "large"), ("instanceType: medium", "medium"), ("name: x", "small")] {
            let text = "apiVersion: vitistack.io/v1alpha1\nkind: Machine\nmetadata: {name: m}\nspec:\n  \(spec)\n"
            let r = try ResourceDecoder(catalog: builtInCatalog()).decode([SourceFile(path: "m.yaml", directory: "/", bytes: Array(text.utf8))], resolvingVMs: false)
            guard case .machine(let m)? = r.resources.first else { Issue.record("not a Machine: \(spec)"); continue }
            #expect(m.classKey == VMTypeKey(kind: "MachineClass", name: name), "\(spec)")
        }
    }
}
