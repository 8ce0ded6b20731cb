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
}
