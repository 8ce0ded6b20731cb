import Testing
import TargetSpec
import TestSupport
import YAMLTree

/// Secrets and ConfigMaps that VMs read: decoded as the API server merges
/// them, and handed to the VM's disks by volume name.
@Suite struct WorkloadVMVolumeTests {
    static let vm = """
        apiVersion: kubevirt.io/v1
        kind: VirtualMachineInstance
        metadata: {name: v}
        spec:
          domain:
            memory: {guest: 128Mi}
            devices: {}
          volumes:
            - {name: cm, configMap: {name: settings}}
            - {name: sec, secret: {secretName: creds}}
            - name: ci
              cloudInitNoCloud:
                secretRef: {name: init}
                networkDataSecretRef: {name: init}
        """

    static func objects(_ secretBody: String = "data: {token: c2VjcmV0, plain: b2xk}\nstringData: {plain: new}") -> String {
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings}
        data: {a: "1"}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: creds}
        type: Opaque
        \(secretBody)
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: init}
        stringData: {userData: "#!/bin/sh\\necho hi\\n", networkdata: "version: 2\\n"}
        ---

        """
    }

    static func decode(_ text: String) throws -> [Resource] {
        try ResourceDecoder(catalog: builtInCatalog()).decode([SourceFile(path: "v.yaml", directory: "/", bytes: Array(text.utf8))]).resources
    }

    @Test func theVolumesGetTheirKeysAndStringDataWins() throws {
        let vms = try Workload.vms(from: Self.decode(Self.objects() + Self.vm), boards: [])
        #expect(vms.count == 1)
        let data = vms[0].volumeData
        #expect(data["cm"] == ["a": Array("1".utf8)])
        #expect(data["sec"] == ["token": Array("secret".utf8), "plain": Array("new".utf8)])
        // KubeVirt's two spellings of the cloud-init keys, under one name each.
        #expect(data["ci"] == ["userdata": Array("#!/bin/sh\necho hi\n".utf8), "networkdata": Array("version: 2\n".utf8)])
    }

    @Test func aSecretsDataMustBeBase64() throws {
        do {
            _ = try Self.decode(Self.objects("data: {token: \"not base64!\"}") + Self.vm)
            Issue.record("bad base64 accepted")
        } catch let e as DiagnosticError {
            #expect(e.diagnostics.contains { $0.description.contains("data.token") && $0.description.contains("not valid base64") }, "\(e)")
        }
    }

    @Test func missingObjectsAndKeysArePositioned() throws {
        let noInit = Self.objects().replacingOccurrences(of: "metadata: {name: init}", with: "metadata: {name: other}")
        do {
            _ = try Workload.vms(from: Self.decode(noInit + Self.vm), boards: [])
            Issue.record("a missing Secret was accepted")
        } catch let error as DiagnosticError {
            let text = error.diagnostics.map(\.description).joined(separator: "\n")
            #expect(text.contains("v.yaml:") && text.contains("Secret \"init\" is not among the inputs"), "\(text)")
        }
        let noKey = Self.objects().replacingOccurrences(of: "userData:", with: "user-data:")
        do {
            _ = try Workload.vms(from: Self.decode(noKey + Self.vm), boards: [])
            Issue.record("a Secret without userdata was accepted")
        } catch let error as DiagnosticError {
            let text = error.diagnostics.map(\.description).joined(separator: "\n")
            #expect(text.contains("Secret \"init\" has no key userdata or userData"), "\(text)")
        }
    }
}
