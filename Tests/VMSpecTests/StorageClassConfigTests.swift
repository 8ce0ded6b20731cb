import Testing
import VMSpec
import YAMLTree

/// `storageclasses.yaml`: StorageClass objects with vtarget's directory
/// provisioner, each naming where its volumes live.
@Suite struct StorageClassConfigTests {
    @Test func classesNameTheirDirectories() throws {
        let text = """
            apiVersion: storage.k8s.io/v1
            kind: StorageClass
            metadata: {name: fast-ssd, annotations: {storageclass.kubernetes.io/is-default-class: "false"}}
            provisioner: vtarget.dev/directory
            parameters: {path: /mnt/ssd/volumes}
            reclaimPolicy: Retain
            volumeBindingMode: Immediate
            ---
            apiVersion: storage.k8s.io/v1
            kind: StorageClass
            metadata: {name: standard}
            provisioner: vtarget.dev/directory
            parameters: {path: /srv/volumes}
            """
        #expect(try StorageClassConfig.decode(Array(text.utf8), file: "sc.yaml") == ["fast-ssd": "/mnt/ssd/volumes", "standard": "/srv/volumes"])
        #expect(try StorageClassConfig.decode([], file: "sc.yaml").isEmpty)
    }

    @Test func badClassesAreRefusedAtTheirField() throws {
        let head = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: a}\n"
        for (text, want) in [
            (head + "provisioner: kubernetes.io/aws-ebs\nparameters: {path: /x}\n",
             "sc.yaml:4:14: error: provisioner: \"kubernetes.io/aws-ebs\" is a cluster's provisioner; valid here: vtarget.dev/directory"),
            (head + "provisioner: vtarget.dev/directory\nparameters: {path: relative/dir}\n", "sc.yaml:5:20: error: parameters.path: \"relative/dir\" must be an absolute directory"),
            (head + "provisioner: vtarget.dev/directory\n", "sc.yaml:1:1: error: parameters: "),
            ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", "sc.yaml:2:7: error: kind: \"ConfigMap\" is not valid here"),
            (head + "provisioner: vtarget.dev/directory\nparameters: {path: /x}\nsize: 1\n", "sc.yaml:6:1: error: size: "),
            (head + "provisioner: vtarget.dev/directory\nparameters: {path: /x}\n---\n" + head + "provisioner: vtarget.dev/directory\nparameters: {path: /y}\n",
             "a second StorageClass named \"a\""),
        ] {
            do {
                _ = try StorageClassConfig.decode(Array(text.utf8), file: "sc.yaml")
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.errors.contains { $0.description.hasPrefix(want) || ($0.description.contains(want) && !want.hasPrefix("sc.yaml")) },
                        "\(want)\n got: \(error.description)")
            }
        }
    }
}
