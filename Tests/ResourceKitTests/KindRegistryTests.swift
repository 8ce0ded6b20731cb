import ResourceKit
import Testing
import YAMLTree

@Suite struct KindRegistryTests {
    let registry = KindRegistry.builtIn

    /// Every spelling accepted before the registry, and kubectl's qualified ones.
    static let spellings: [(String, [String])] = [
        ("QemuVirtualTarget", ["target", "targets", "qvt", "qemuvirtualtarget", "qemuvirtualtargets", "QemuVirtualTarget",
                               "qemuvirtualtargets.qemu.kubetarget.dev", "qemuvirtualtarget.qemu.kubetarget.dev",
                               "QemuVirtualTarget.qemu.kubetarget.dev", "qemuvirtualtargets.v1alpha1.qemu.kubetarget.dev", "QVT"]),
        ("VirtualTargetInstance", ["instance", "instances", "vti", "inst", "virtualtargetinstance", "virtualtargetinstances",
                                   "VirtualTargetInstance", "virtualtargetinstances.kubetarget.dev",
                                   "virtualtargetinstance.kubetarget.dev", "VirtualTargetInstance.kubetarget.dev", "Instances"]),
        ("VirtualTargetPool", ["pool", "pools", "vtp", "virtualtargetpool", "virtualtargetpools", "VirtualTargetPool",
                               "virtualtargetpools.kubetarget.dev", "virtualtargetpool.kubetarget.dev"]),
        ("ConfigMap", ["configmap", "configmaps", "cm", "ConfigMap", "CM"]),
    ]

    @Test(arguments: spellings)
    func everySpellingResolves(_ kind: String, _ words: [String]) throws {
        for w in words { #expect(try registry.resolve(w).kind == kind, "\(w)") }
    }

    @Test func spellingsBelongToOneKindEach() {
        var owner: [String: String] = [:]
        for k in registry.kinds {
            for s in k.spellings {
                #expect(owner[s] == nil, "\(s) is both \(owner[s] ?? "") and \(k.kind)")
                owner[s] = k.kind
            }
        }
    }

    @Test func aWrongGroupOrAShortNameWithAGroupIsUnknown() {
        for w in ["qemuvirtualtargets.kubetarget.dev", "vti.kubetarget.dev", "configmaps.kubetarget.dev", "targets.qemu.kubetarget.dev"] {
            #expect(throws: UnknownKind.self, "\(w)") { try registry.resolve(w) }
        }
    }

    @Test func anUnknownKindSaysWhatIsValidAndGuesses() {
        #expect(throws: UnknownKind(word: "tragets", suggestion: "targets", valid: registry.help)) { try registry.resolve("tragets") }
        do {
            _ = try registry.resolve("widgets")
            Issue.record("widgets resolved")
        } catch {
            #expect(error.suggestion == nil)
            #expect(error.description.hasPrefix("unknown kind \"widgets\"; valid: targets (qvt), instances (vti, inst), pools (vtp), configmaps (cm), secrets, persistentvolumeclaims (pvc), datavolumes (dv, dvs), virtualmachines (vm, vms), "))
            #expect(error.description.hasSuffix(", machines, machineclasses (mc)"))
        }
    }

    @Test func apiVersionsAndQualifiedNamesFollowKubernetes() throws {
        let qvt = try registry.resolve("qvt"), cm = try registry.resolve("cm"), vti = try registry.resolve("vti")
        #expect(qvt.apiVersion == "qemu.kubetarget.dev/v1alpha1" && qvt.qualifiedName == "qemuvirtualtarget.qemu.kubetarget.dev")
        #expect(vti.apiVersion == "kubetarget.dev/v1alpha1" && vti.qualifiedName == "virtualtargetinstance.kubetarget.dev")
        #expect(cm.apiVersion == "v1" && cm.qualifiedName == "configmap")
        #expect(registry.kinds.filter { !$0.namespaced }.map(\.kind) == ["VirtualMachineClusterInstancetype", "VirtualMachineClusterPreference", "MachineClass"])
    }

    /// KubeVirt's and Viti's spellings, as their CRDs declare them: `machines` are Viti Machines.
    @Test func vmKindsResolveAsKubectlWould() throws {
        for (word, kind) in [("vm", "VirtualMachine"), ("vms", "VirtualMachine"), ("virtualmachines", "VirtualMachine"),
                             ("virtualmachine.kubevirt.io", "VirtualMachine"), ("vmi", "VirtualMachineInstance"), ("vmis", "VirtualMachineInstance"),
                             ("vminstancetype", "VirtualMachineInstancetype"), ("vmf", "VirtualMachineInstancetype"),
                             ("vmclusterinstancetype", "VirtualMachineClusterInstancetype"), ("vmcf", "VirtualMachineClusterInstancetype"),
                             ("vmpref", "VirtualMachinePreference"), ("vmp", "VirtualMachinePreference"), ("vmcp", "VirtualMachineClusterPreference"),
                             ("machines", "Machine"), ("machine.vitistack.io", "Machine"), ("mc", "MachineClass"), ("machineclasses", "MachineClass")] {
            #expect(try registry.resolve(word).kind == kind, "\(word)")
        }
        let vm = try registry.resolve("vm")
        #expect(vm.apiVersion == "kubevirt.io/v1" && vm.qualifiedName == "virtualmachine.kubevirt.io")
        #expect(try registry.resolve("machines").apiVersion == "vitistack.io/v1alpha1")
    }

    @Test func deleteOrderPutsUsersFirstAndKeepsTheGivenOrderOtherwise() {
        let given = ["ConfigMap/a", "QemuVirtualTarget/t", "Widget/w", "VirtualTargetInstance/i", "ConfigMap/b", "VirtualTargetPool/p"]
        let ordered = registry.deleteOrder(given) { String($0.split(separator: "/")[0]) }
        #expect(ordered == ["VirtualTargetInstance/i", "VirtualTargetPool/p", "QemuVirtualTarget/t", "ConfigMap/a", "ConfigMap/b", "Widget/w"])
    }
}
