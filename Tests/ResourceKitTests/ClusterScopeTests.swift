import ResourceKit
import Testing

/// Cluster-scoped kinds live in no namespace: whatever namespace an object
/// of one names, it is stored under the cluster scope, as kubectl ignores
/// `-n` for them; namespaced and unknown kinds keep theirs.
@Suite struct ClusterScopeTests {
    @Test func clusterKindsAreStoredOnceAndTheOthersInTheirNamespace() {
        let registry = KindRegistry.builtIn
        for k in registry.kinds {
            for ns in ["default", "team-a", ""] {
                let stored = registry.storedNamespace(kind: k.kind, ns)
                #expect(stored == (k.namespaced ? ns : KindRegistry.clusterScope), "\(k.kind) in \(ns)")
            }
        }
        let cluster = registry.kinds.filter { !$0.namespaced }.map(\.kind).sorted()
        #expect(cluster == ["MachineClass", "VirtualMachineClusterInstancetype", "VirtualMachineClusterPreference"])
        #expect(registry.storedNamespace(kind: "NoSuchKind", "team-a") == "team-a")
        #expect(KindRegistry.clusterScope.isEmpty)
    }
}
