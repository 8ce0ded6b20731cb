import Foundation
import TestSupport
import Testing
import TargetSpec
import VMSpec
import YAMLTree

/// `spec.dataVolumeTemplates` (CDI DataVolumes made with the VM): each
/// becomes the named local volume its VM's `dataVolume` or
/// `persistentVolumeClaim` volume names, with its size, class and content.
@Suite struct DataVolumeTemplateTests {
    static func vm(templates: String, volumes: String) -> String {
        """
        apiVersion: kubevirt.io/v1
        kind: VirtualMachine
        metadata: {name: v}
        spec:
          runStrategy: Always
          dataVolumeTemplates:
        \(templates)
          template:
            spec:
              domain:
                memory: {guest: 128Mi}
              volumes:
        \(volumes)
        """
    }

    @Test func eachSourceBecomesItsVolumesContent() throws {
        let text = Self.vm(templates: """
              - metadata: {name: root}
                spec:
                  storage:
                    resources: {requests: {storage: 2Gi}}
                    storageClassName: fast
                  source: {registry: {url: "docker://registry:5000/kubevirt/fedora:39", pullMethod: node}}
              - apiVersion: cdi.kubevirt.io/v1beta1
                kind: DataVolume
                metadata: {name: scratch, labels: {a: b}}
                spec:
                  pvc:
                    accessModes: [ReadWriteOnce]
                    volumeMode: Block
                    resources: {requests: {storage: 64Mi}}
                  source: {blank: {}}
              - metadata: {name: copy}
                spec:
                  storage: {}
                  source: {pvc: {namespace: golden, name: base}}
                  preallocation: true
                  contentType: kubevirt
            """, volumes: """
                    - {name: root, dataVolume: {name: root}}
                    - {name: scratch, persistentVolumeClaim: {claimName: scratch}}
                    - {name: copy, dataVolume: {name: copy}}
                    - {name: other, persistentVolumeClaim: {claimName: plain}}
            """)
        let r = try decodeText(text)
        #expect(r.warnings.isEmpty, "\(r.warnings)")
        let d = try #require(r.resources.compactMap(\.vmDefinition).first)
        #expect(d.disks.map(\.source) == [
            .volume(name: "root", capacityBytes: 2 << 30, storageClass: "fast", content: .image(reference: "registry:5000/kubevirt/fedora:39")),
            .volume(name: "scratch", capacityBytes: 64 << 20, storageClass: nil, content: .blank),
            .volume(name: "copy", capacityBytes: nil, storageClass: nil, content: .clone(namespace: "golden", name: "base")),
            .volume(name: "plain", capacityBytes: nil, storageClass: nil),
        ])
    }

    /// KubeVirt makes a template no volume names; here nothing would, which is said, not refused.
    @Test func aTemplateNoVolumeNamesIsAWarning() throws {
        let r = try decodeText(Self.vm(templates: """
              - metadata: {name: unused}
                spec: {storage: {resources: {requests: {storage: 1Gi}}}, source: {blank: {}}}
            """, volumes: """
                    - {name: e, emptyDisk: {capacity: 1Gi}}
            """))
        #expect(r.warnings.map(\.description).contains { $0.contains("m.yaml:7:") && $0.contains("no volume of the VM names DataVolume \"unused\"") },
                "\(r.warnings)")
    }

    /// A PersistentVolumeClaim or DataVolume of its own sizes and fills the
    /// volume of its name; a VM's template of the same name wins.
    @Test func claimsAndDataVolumesOfTheirOwnSizeTheirVolumes() throws {
        let vm = Self.vm(templates: """
              - metadata: {name: own}
                spec: {storage: {resources: {requests: {storage: 3Gi}}}, source: {blank: {}}}
            """, volumes: """
                    - {name: a, persistentVolumeClaim: {claimName: data}}
                    - {name: b, dataVolume: {name: golden}}
                    - {name: c, persistentVolumeClaim: {claimName: copy}}
                    - {name: d, dataVolume: {name: own}}
            """)
        let text = vm + """

            ---
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata: {name: data}
            spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Gi}}, storageClassName: slow}
            ---
            apiVersion: cdi.kubevirt.io/v1beta1
            kind: DataVolume
            metadata: {name: golden}
            spec: {storage: {}, source: {registry: {url: "docker://r:5000/os:1"}}}
            ---
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata: {name: copy}
            spec:
              resources: {requests: {storage: 1Gi}}
              dataSource: {kind: PersistentVolumeClaim, name: data}
            ---
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata: {name: own}
            spec: {resources: {requests: {storage: 9Gi}}}
            """
        let r = try decodeText(text)
        var resources = r.resources
        let vms = try Workload.vms(from: resources, boards: [])
        resources.removeAll()
        #expect(try #require(vms.first).vm.disks.map(\.source) == [
            .volume(name: "data", capacityBytes: 5 << 30, storageClass: "slow", content: nil),
            .volume(name: "golden", capacityBytes: nil, storageClass: nil, content: .image(reference: "r:5000/os:1")),
            .volume(name: "copy", capacityBytes: 1 << 30, storageClass: nil, content: .clone(namespace: nil, name: "data")),
            .volume(name: "own", capacityBytes: 3 << 30, storageClass: nil, content: .blank),
        ])
        // What the supervisor hands a VM's shim beside it: the objects its volumes name.
        #expect(vms[0].vm.disks[0].source.objectKeys == ["PersistentVolumeClaim/data", "DataVolume/data"])
    }

    @Test func badClaimsAreRefusedAtTheirField() throws {
        let claim = { (spec: String) in "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: \(spec)\n" }
        for (spec, want) in [
            ("{accessModes: [ReadWriteOnce]}", "t.yaml:4:7: error: spec.resources: "),
            ("{resources: {requests: {cpu: 1}}}", "a claim needs its size: give resources.requests.storage"),
            ("{resources: {requests: {storage: 1Gi}}, dataSource: {kind: VolumeSnapshot, apiGroup: snapshot.storage.k8s.io, name: s}}",
             "a VolumeSnapshot data source needs a cluster"),
            ("{resources: {requests: {storage: 1Gi}}, dataSource: {kind: PersistentVolumeClaim, name: c}}", "a claim cannot be cloned from itself"),
            ("{resources: {requests: {storage: 1Gi}}, volumeName: pv-1}", "\"volumeName\" needs a cluster"),
        ] {
            let got = try errors(claim(spec))
            #expect(got.contains { $0.contains(want) }, "\(spec): \(got)")
        }
        let dv = "apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata: {name: d}\nspec: {storage: {}, source: {blank: {}}}\n"
        #expect(try errors(dv).contains { $0.contains("a blank DataVolume needs its size") })
        // A claim and a DataVolume of one name: one volume cannot be both.
        let both = Self.vm(templates: "      []", volumes: "            - {name: a, persistentVolumeClaim: {claimName: x}}") + """

            ---
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata: {name: x}
            spec: {resources: {requests: {storage: 1Gi}}}
            ---
            apiVersion: cdi.kubevirt.io/v1beta1
            kind: DataVolume
            metadata: {name: x}
            spec: {storage: {resources: {requests: {storage: 1Gi}}}, source: {blank: {}}}
            """
        let resources = try decodeText(both).resources
        do {
            _ = try Workload.vms(from: resources, boards: [])
            Issue.record("a claim and a DataVolume of one name were accepted")
        } catch {
            #expect(error.diagnostics.contains { $0.description.contains("a PersistentVolumeClaim and a DataVolume are both named \"x\"") }, "\(error.diagnostics)")
        }
    }
}
