import ArgumentParser
import HostOS
import KubeRender

/// `vtarget crds`: what `kubectl apply -f -` needs before the YAML vtarget
/// reads can be applied to a cluster.
struct CRDs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crds",
        abstract: "Print the CustomResourceDefinitions of QemuVirtualTarget, VirtualTargetInstance and VirtualTargetPool.",
        discussion: """
            Structural OpenAPI v3 schemas with the local validator's rules (types, enums, patterns, \
            required fields, DNS-1123 names, quantities, durations), printer columns as `vtarget get` \
            shows them, and the status subresource. Rules that depend on the machine profile, on other \
            resources or on files stay local. Apply with: vtarget crds | kubectl apply -f -
            """)

    @Option(name: .shortAndLong, help: "yaml or json.")
    var output: KubeOutput.Format = .yaml

    func run() throws {
        do {
            let crds = try CRDSchema.definitions()
            printOut(try KubeOutput.text(crds.map(KubeObject.crd), output), terminator: "")
        } catch let e as CRDSchema.Problem {
            throw RuntimeError(e.description)
        } catch let e as KubeOutput.Problem {
            throw RuntimeError(e.description)
        }
    }
}

extension KubeOutput.Format: ExpressibleByArgument {}
