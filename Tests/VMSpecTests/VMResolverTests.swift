import Foundation
import MachineCatalog
import TestSupport
import Testing
import TargetSpec
import VMSpec
import YAMLTree

/// The errors of decoding `text`, rendered; empty when it was accepted.
func errors(_ text: String, allowHostPaths: Bool = false) throws -> [String] {
    do {
        _ = try ResourceDecoder(catalog: builtInCatalog(), options: DecodeOptions(allowHostPaths: allowHostPaths))
            .decode([SourceFile(path: "t.yaml", directory: "/", bytes: Array(text.utf8))])
        return []
    } catch let e as DiagnosticError {
        return e.errors.map(\.description)
    }
}

let instancetype = """
    apiVersion: instancetype.kubevirt.io/v1beta1
    kind: VirtualMachineClusterInstancetype
    metadata: {name: it}
    spec: {cpu: {guest: 4}, memory: {guest: 2Gi}}
    ---

    """

/// A VM using `it` and a cluster preference with `preference` as its spec.
func withPreference(_ preference: String) throws -> VMDefinition {
    let text = instancetype + """
        apiVersion: instancetype.kubevirt.io/v1beta1
        kind: VirtualMachineClusterPreference
        metadata: {name: p}
        spec: \(preference)
        ---
        apiVersion: kubevirt.io/v1
        kind: VirtualMachine
        metadata: {name: v}
        spec:
          instancetype: {name: it}
          preference: {name: p}
          template:
            spec: {domain: {}}
        """
    let r = try decodeText(text)
    return try #require(r.resources.compactMap(\.vmDefinition).first)
}

@Suite struct VMResolverTests {
    /// The memory's field and where it was written go with the definition,
    /// for the planner's check against the host: the VM's own field, the
    /// instancetype that set it, or a Viti Machine's `memory`.
    @Test func memoryKeepsItsFieldAndLocation() throws {
        let own = try #require(try decodeText("""
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: v}
            spec:
              domain:
                memory:
                  guest: 64Ti
            """, file: "vm.yaml").resources.first?.vmDefinition)
        #expect(own.memoryBytes == 64 << 40)
        #expect(own.memoryField == "spec.domain.memory.guest")
        #expect(own.memoryLocation.map { "\($0.file):\($0.line):\($0.column)" } == "vm.yaml:7:14")

        let fromInstancetype = try withPreference("{}")
        #expect(fromInstancetype.memoryField == "spec.memory.guest")
        #expect(fromInstancetype.memoryLocation?.line == 3)

        let viti = try #require(try decodeText("""
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata: {name: m}
            spec:
              memory: 8Gi
            """).resources.first?.vmDefinition)
        #expect(viti.memoryField == "spec.memory")
        #expect(viti.memoryLocation.map { "\($0.file):\($0.line):\($0.column)" } == "m.yaml:5:11")
    }

    @Test(arguments: [("{}", CPUTopology(sockets: 4)), ("{cpu: {preferredCPUTopology: cores}}", CPUTopology(cores: 4)),
                      ("{cpu: {preferredCPUTopology: preferThreads}}", CPUTopology(threads: 4)),
                      ("{cpu: {preferredCPUTopology: spread}}", CPUTopology(sockets: 2, cores: 2)),
                      ("{cpu: {preferredCPUTopology: spread, spreadOptions: {ratio: 4}}}", CPUTopology(sockets: 1, cores: 4))])
    func instancetypeVCPUsFollowThePreferredTopology(_ preference: String, _ topology: CPUTopology) throws {
        let d = try withPreference(preference)
        #expect(d.cpu == topology)
        #expect(d.memoryBytes == 2 << 30)
    }

    @Test func preferenceFillsWhatTheVMLeavesUnset() throws {
        let d = try withPreference("""
            {devices: {preferredDiskBus: sata, preferredInterfaceModel: e1000e, preferredAutoattachSerialConsole: false, preferredRng: {}},
             firmware: {preferredUseEfi: true}, machine: {preferredMachineType: pc}, preferredTerminationGracePeriodSeconds: 5}
            """)
        #expect(d.machineType == "pc" && d.firmware == .efi(secureBoot: false) && d.rng && !d.serialConsole)
        #expect(d.interfaces == [VMInterface(name: "default", model: "e1000e")])
        #expect(d.terminationGracePeriodSeconds == 5)
    }

    @Test func preferenceBusesApplyToDisksWithoutOne() throws {
        let text = """
            apiVersion: instancetype.kubevirt.io/v1beta1
            kind: VirtualMachinePreference
            metadata: {name: p}
            spec: {devices: {preferredDiskBus: sata}}
            ---
            apiVersion: kubevirt.io/v1
            kind: VirtualMachine
            metadata: {name: v}
            spec:
              preference: {name: p, kind: VirtualMachinePreference}
              template:
                spec:
                  domain:
                    memory: {guest: 1Gi}
                    devices: {disks: [{name: a}, {name: b, disk: {bus: scsi}}, {name: c, lun: {}}]}
                  volumes:
                    - {name: a, emptyDisk: {capacity: 1Gi}}
                    - {name: b, persistentVolumeClaim: {claimName: data, readOnly: true}}
                    - {name: c, dataVolume: {name: dv}}
            """
        let d = try #require(try decodeText(text).resources.compactMap(\.vmDefinition).first)
        #expect(d.disks.map(\.bus) == [.sata, .scsi, .scsi])
        #expect(d.disks.map(\.kind) == [.disk, .disk, .lun])
        #expect(d.disks.map(\.readonly) == [false, true, false])
        #expect(d.disks[2].source == .volume(name: "dv", capacityBytes: nil, storageClass: nil))
    }

    @Test func preferenceRequirementsAreChecked() throws {
        let e = try errors(instancetype + """
            apiVersion: instancetype.kubevirt.io/v1beta1
            kind: VirtualMachineClusterPreference
            metadata: {name: p}
            spec: {requirements: {cpu: {guest: 8}, memory: {guest: 4Gi}}}
            ---
            apiVersion: kubevirt.io/v1
            kind: VirtualMachine
            metadata: {name: v}
            spec:
              instancetype: {name: it}
              preference: {name: p}
              template: {spec: {domain: {}}}
            """)
        #expect(e.contains { $0.contains("4 vCPUs are fewer than the VirtualMachineClusterPreference \"p\" requires (8)") }, "\(e)")
        #expect(e.contains { $0.contains("2Gi is less than the VirtualMachineClusterPreference \"p\" requires (4Gi)") }, "\(e)")
    }

    @Test func instancetypeConflictsWithTheVMsOwnCPU() throws {
        let e = try errors(instancetype + """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachine
            metadata: {name: v}
            spec:
              instancetype: {name: it}
              template: {spec: {domain: {cpu: {sockets: 2}, resources: {requests: {cpu: "1"}}}}}
            """)
        #expect(e == [
            "t.yaml:11:45: error: spec.template.spec.domain.cpu.sockets: conflicts with the VirtualMachineClusterInstancetype \"it\", which sets it; remove it from the VM (it gives 4)",
            "t.yaml:11:77: error: spec.template.spec.domain.resources.requests.cpu: conflicts with the VirtualMachineClusterInstancetype \"it\", which sets it; remove it from the VM",
        ])
    }

    @Test func runningMapsToARunStrategy() throws {
        func strategy(_ field: String) throws -> RunStrategy? {
            try decodeText("""
                apiVersion: kubevirt.io/v1
                kind: VirtualMachine
                metadata: {name: v}
                spec: {\(field)template: {spec: {domain: {memory: {guest: 1Gi}}}}}
                """).resources.first?.vmDefinition?.runStrategy
        }
        #expect(try strategy("running: true, ") == .Always)
        #expect(try strategy("running: false, ") == .Halted)
        #expect(try strategy("") == .Halted)
        #expect(try strategy("runStrategy: RerunOnFailure, ") == .RerunOnFailure)
        let e = try errors("""
            apiVersion: kubevirt.io/v1
            kind: VirtualMachine
            metadata: {name: v}
            spec: {running: true, runStrategy: Always, template: {spec: {domain: {memory: {guest: 1Gi}}}}}
            """)
        #expect(e == ["t.yaml:4:36: error: spec.runStrategy: give runStrategy or the deprecated running, not both (as KubeVirt refuses)"])
    }

    @Test func memoryFromRequestsAndLimits() throws {
        func vmi(_ domain: String) -> String {
            "apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata: {name: v}\nspec: {domain: {\(domain)}}\n"
        }
        #expect(try decodeText(vmi("resources: {requests: {memory: 512Mi}}")).resources.first?.vmDefinition?.memoryBytes == 512 << 20)
        #expect(try decodeText(vmi("resources: {limits: {memory: 1G}}")).resources.first?.vmDefinition?.memoryBytes == 1_000_000_000)
        #expect(try errors(vmi("memory: {guest: 2Gi}, resources: {limits: {memory: 1Gi}}")) ==
                ["t.yaml:4:33: error: spec.domain.memory.guest: 2Gi is above resources.limits.memory (1Gi)"])
        #expect(try errors(vmi("memory: {guest: 1Gi}, resources: {requests: {nvidia.com/gpu: 1}}")).first?.contains("resource \"nvidia.com/gpu\" needs a cluster") == true)
    }

    @Test func cloudInitSources() throws {
        let text = """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: v}
            spec:
              domain: {memory: {guest: 1Gi}}
              volumes:
                - name: a
                  cloudInitConfigDrive: {userDataBase64: I2Nsb3VkLWNvbmZpZwo=, networkDataSecretRef: {name: net}}
                - name: b
                  cloudInitNoCloud: {secretRef: {name: ud}}
                - {name: c, configMap: {name: app-config}}
                - {name: d, secret: {secretName: app-secret}}
            """
        let d = try #require(try decodeText(text).resources.first?.vmDefinition)
        #expect(d.disks.map(\.source) == [
            .cloudInit(CloudInit(flavor: .configDrive, userData: "#cloud-config\n", networkDataSecret: "net")),
            .cloudInit(CloudInit(flavor: .noCloud, userDataSecret: "ud")),
            .configMap(name: "app-config"), .secret(name: "app-secret"),
        ])
        let twice = try errors("""
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: v}
            spec:
              domain: {memory: {guest: 1Gi}}
              volumes: [{name: a, cloudInitNoCloud: {userData: x, userDataBase64: eA==}}]
            """)
        #expect(twice == ["t.yaml:6:71: error: spec.volumes[0].cloudInitNoCloud.userDataBase64: give one of userData, userDataBase64 or secretRef, not userData and userDataBase64"])
    }

    /// KubeVirt's `volumeLabel` and `optional` of configMap and secret
    /// volumes: the label reaches the disk; an optional object that is not
    /// among the inputs is a disk with no files, a required one an error.
    @Test func configVolumeLabelAndOptional() throws {
        let text = """
            apiVersion: v1
            kind: Secret
            metadata: {name: s}
            stringData: {token: t}
            ---
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: v}
            spec:
              domain: {memory: {guest: 1Gi}}
              volumes:
                - {name: a, secret: {secretName: s, volumeLabel: OEMDRV}}
                - {name: b, configMap: {name: absent, optional: true}}
                - {name: c, configMap: {name: app, optional: false}}
            """
        let decoded = try decodeText(text.replacingOccurrences(of: "    - {name: c, configMap: {name: app, optional: false}}", with: ""))
        let d = try #require(decoded.resources.compactMap(\.vmDefinition).first)
        #expect(d.disks.map(\.volumeLabel) == ["OEMDRV", nil] && d.disks.map(\.optional) == [false, true])
        let vms = try Workload.vms(from: decoded.resources, boards: [])
        #expect(vms.first?.volumeData == ["a": ["token": Array("t".utf8)], "b": [:]])
        // Not optional and not there: an error at the volume.
        let all = try decodeText(text)
        #expect(throws: DiagnosticError.self) { try Workload.vms(from: all.resources, boards: []) }
        do {
            _ = try Workload.vms(from: all.resources, boards: [])
        } catch {
            #expect(error.errors.map(\.description).contains { $0.contains("ConfigMap \"app\" is not among the inputs") }, "\(error)")
        }
    }

    @Test func multusNetworkBecomesTheInterfacesNetwork() throws {
        let text = """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: v}
            spec:
              domain:
                memory: {guest: 1Gi}
                devices:
                  interfaces:
                    - {name: default, masquerade: {}, macAddress: "02:00:00:AA:BB:01"}
                    - {name: lab, bridge: {}, model: e1000}
              networks:
                - {name: default, pod: {}}
                - {name: lab, multus: {networkName: lab-net}}
            """
        let d = try #require(try decodeText(text).resources.first?.vmDefinition)
        #expect(d.interfaces == [VMInterface(name: "default", macAddress: "02:00:00:aa:bb:01"),
                                 VMInterface(name: "lab", binding: .bridge, model: "e1000", network: "lab-net")])
    }

    @Test func twoPodNetworksAreRefused() throws {
        let e = try errors("""
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: v}
            spec:
              domain:
                memory: {guest: 1Gi}
                devices: {interfaces: [{name: a, masquerade: {}}, {name: b, masquerade: {}}]}
              networks: [{name: a, pod: {}}, {name: b, pod: {}}]
            """)
        #expect(e == ["t.yaml:8:34: error: spec.networks[1].pod: only one network can be the pod network"])
    }

    @Test func machineClassBoundsTheMemoryOverride() throws {
        let e = try errors("""
            apiVersion: vitistack.io/v1alpha1
            kind: MachineClass
            metadata: {name: tiny}
            spec: {cpu: {cores: 1}, memory: {quantity: 512Mi, maxQuantity: 1Gi}}
            ---
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata: {name: m}
            spec: {machineClass: tiny, memory: 2147483648}
            """)
        #expect(e == ["t.yaml:9:36: error: spec.memory: 2Gi is above MachineClass \"tiny\"'s maxQuantity 1Gi"])
    }

    @Test func vitiProviderOnlyFieldsAreRefusedByName() throws {
        let e = try errors("""
            apiVersion: vitistack.io/v1alpha1
            kind: Machine
            metadata: {name: m}
            spec:
              provider: kubevirt
              disks: [{name: d, sizeGB: 5, iops: 3000}]
              backup: {enabled: true}
            """)
        #expect(e.count == 2)
        #expect(e.contains { $0.hasPrefix("t.yaml:6:38: error: spec.disks[0].iops: \"iops\" needs a cluster (a cloud provider's setting") }, "\(e)")
        #expect(e.contains { $0.hasPrefix("t.yaml:7:11: error: spec.backup: \"backup\" needs a cluster") }, "\(e)")
    }

    @Test func kernelArgsNeedAKernel() throws {
        let e = try errors("""
            apiVersion: kubevirt.io/v1
            kind: VirtualMachineInstance
            metadata: {name: v}
            spec: {domain: {memory: {guest: 1Gi}, firmware: {kernelBoot: {kernelArgs: console=ttyS0}}}}
            """)
        #expect(e == ["t.yaml:4:75: error: spec.domain.firmware.kernelBoot.kernelArgs: kernelArgs needs a kernel: give kernelBoot.container"])
    }
}
