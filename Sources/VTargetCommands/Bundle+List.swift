import ArgumentParser
import ControlAPI
import Foundation
import ReplayFormat
import ReplayRuntime
import Supervisor

extension BundleCommand {
    /// `vtarget bundle ls [NAME]`: the bundles the supervisor keeps for
    /// recorded instances (`record: true`), deleted ones included, with each
    /// one's verdict from its manifest.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls",
            abstract: "List the bundles kept for recorded instances (spec.record: true), deleted instances' too.",
            discussion: """
                Each run of a recorded instance leaves one bundle in the supervisor's state directory \
                (<state>/bundles/NAMESPACE/NAME/); the newest \(BundleShelf.kept) per instance are kept until you remove them. \
                Replay one with vtarget replay PATH.
                """,
            aliases: ["list"])

        @Argument(help: "Only this instance's bundles.")
        var name: String?

        @OptionGroup var namespaces: NamespaceOptions

        @Option(name: [.customShort("o"), .long], help: "Output format: text, json or path (one path a line).")
        var output = "text"

        func validate() throws {
            if !["text", "json", "path"].contains(output) { throw ValidationError("-o: expected text, json or path, got \(output)") }
            if namespaces.allNamespaces, namespaces.namespace != nil { throw ValidationError("give -n NAMESPACE or -A, not both") }
        }

        /// One bundle as listed: where it is, and what its manifest says.
        struct Listed: Encodable {
            var namespace: String
            var name: String
            var path: String
            var size: UInt64
            var createdAt: String
            /// The run's exit code and why it ended; nil when the manifest could not be read.
            var exitCode: Int32?
            var reason: String?
        }

        func run() async throws {
            let client = try await SupervisorConnection.ensure()
            var query = namespaces.query
            if let name { query += (query.isEmpty ? "" : "&") + "name=" + (name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name) }
            let kept: [BundleInfo]
            do { kept = try await client.get("/v1/bundles?" + query) } catch { throw error.asCommandError }
            if output == "path" {
                if !kept.isEmpty { printOut(kept.map(\.path).joined(separator: "\n")) }
                return
            }
            var listed: [Listed] = []
            for b in kept {
                var l = Listed(namespace: b.namespace, name: b.name, path: b.path, size: b.size, createdAt: Table.timestamp(b.modifiedAt))
                // The manifest alone, not the whole bundle: a listing stays quick.
                if let bytes = try? await BundleArchive.readMember(b.path, BundleManifest.fileName), let m = try? BundleManifest.decode(bytes) {
                    l.createdAt = m.createdAt
                    l.exitCode = m.verdict.exitCode
                    l.reason = m.verdict.reason
                }
                listed.append(l)
            }
            if output == "json" {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                printOut(String(decoding: try encoder.encode(listed), as: UTF8.self))
                return
            }
            guard !listed.isEmpty else {
                let whose = name.map { "instance \"\($0)\"" } ?? "any instance"
                let where_ = namespaces.allNamespaces ? "" : " in namespace \(namespaces.effective)"
                printError("No bundles kept for \(whose)\(where_) (an instance records with spec.record: true).")
                return
            }
            let head = (namespaces.allNamespaces ? ["NAMESPACE"] : []) + ["NAME", "CREATED", "VERDICT", "SIZE", "PATH"]
            let rows = listed.map { l in
                (namespaces.allNamespaces ? [l.namespace] : []) + [
                    l.name, l.createdAt, l.exitCode.map { "exit \($0)" + (l.reason.map { ": \($0)" } ?? "") } ?? "unreadable",
                    ImageCommand.size(l.size), l.path,
                ]
            }
            printOut(Table.render([head] + rows))
        }
    }
}
