import Foundation
import MachineCatalog
import TestSupport
import Testing
import TargetSpec
import VMSpec
import YAMLTree

func decodeText(_ text: String, file: String = "m.yaml") throws -> DecodedResources {
    try ResourceDecoder(catalog: builtInCatalog()).decode([SourceFile(path: file, directory: "/", bytes: Array(text.utf8))])
}

@Suite struct VitiMachineTests {
    /// The seed's second example: the small class with CPU and memory overridden.
    @Test func seedMachineWithOverrides() throws {
        let r = try decodeText("""
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata:
              name: example-machine-custom
            spec:
              instanceType: "small"
              name: "example-vm-custom"
              cpu:
                cores: 4
                sockets: 4
                threadsPerCore: 2
              memory: 4294967296  # 4 GB in bytes
            """)
        let d = try #require(r.resources.first?.vmDefinition)
        #expect(d.api == .vitiMachine && d.runStrategy == .Always)
        #expect(d.cpu == CPUTopology(sockets: 4, cores: 4, threads: 2))
        #expect(d.memoryBytes == 4 << 30)
        #expect(d.hostname == "example-vm-custom")
        #expect(d.disks.isEmpty)
        #expect(d.interfaces == [VMInterface(name: "default")])
    }

    @Test(arguments: [("small", 1, 1, 1, 1), ("medium", 2, 2, 1, 2), ("large", 4, 2, 2, 4)])
    func builtInClasses(_ name: String, _ cores: Int, _ sockets: Int, _ threads: Int, _ gib: UInt64) throws {
        let r = try decodeText("""
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata: {name: m}
            spec:
              instanceType: \(name)
              disks:
                - name: "data-disk"
                  size: "10Gi"
                  storageClass: "fast-ssd"
            """)
        let d = try #require(r.resources.first?.vmDefinition)
        #expect(d.cpu == CPUTopology(sockets: sockets, cores: cores, threads: threads))
        #expect(d.memoryBytes == gib << 30)
        #expect(d.disks.map(\.source) == [.volume(name: "m-data-disk", capacityBytes: 10 << 30, storageClass: "fast-ssd")])
        #expect(d.hostname == "m")
    }

    @Test func upstreamMachineWithItsClass() throws {
        let r = try decodeVMs(["examples/viti-machine.yaml"])
        let d = try #require(r.resources.compactMap(\.vmDefinition).first)
        // The MachineClass "medium" replaces the built-in one (2/2/1, 2 GB).
        #expect(d.cpu == CPUTopology(sockets: 1, cores: 2, threads: 1))
        #expect(d.memoryBytes == 3 << 30)
        #expect(d.hostname == "web-1")
        #expect(d.disks.map(\.name) == ["os", "data", "cloudinit"])
        #expect(d.disks[0].source == .image(reference: "debian:12", path: nil) && d.disks[0].bootOrder == 1)
        #expect(d.disks[1].source == .volume(name: "viti-web-data", capacityBytes: 10 << 30, storageClass: "standard"))
        guard case .cloudInit(let ci) = d.disks[2].source else { Issue.record("no seed"); return }
        #expect(ci.flavor == .noCloud)
        #expect(ci.userData == """
            #cloud-config
            ssh_authorized_keys:
              - "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnlyForTheDocs user@host"
            runcmd:
              - - /bin/sh
                - -c
                - |
                  #!/bin/sh
                  echo hello from viti > /run/hello

            """)
        // The merged user data is one YAML mapping cloud-init can read.
        let docs = try YAMLParser.parse(ci.userData!, file: "user-data")
        guard case .mapping(let pairs) = docs[0].root.content else { Issue.record("not a mapping"); return }
        #expect(pairs.compactMap(\.key.scalar) == ["ssh_authorized_keys", "runcmd"])
    }

    @Test func cloudConfigUserDataMergesWithKeys() throws {
        let r = try decodeText("""
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata: {name: m}
            spec:
              sshKeys: ["ssh-rsa AAAA a@b"]
              userData: |
                #cloud-config
                packages: [nginx]
            """)
        guard case .cloudInit(let ci)? = r.resources.first?.vmDefinition?.disks.last?.source else { Issue.record("no seed"); return }
        #expect(ci.userData == "#cloud-config\nssh_authorized_keys:\n  - \"ssh-rsa AAAA a@b\"\npackages: [nginx]\n")
    }

    @Test func userDataAloneIsUnchanged() throws {
        let r = try decodeText("""
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata: {name: m}
            spec:
              userData: "#!/bin/sh\\necho hi\\n"
            """)
        guard case .cloudInit(let ci)? = r.resources.first?.vmDefinition?.disks.last?.source else { Issue.record("no seed"); return }
        #expect(ci.userData == "#!/bin/sh\necho hi\n")
    }
}
