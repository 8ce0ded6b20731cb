import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import ReplayFormat
import ReplayRuntime

/// `vtarget bundle show|extract`: what a recorded run holds, checked first.
struct BundleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bundle",
        abstract: "Inspect or unpack a recorded run (.vtb).",
        subcommands: [Show.self, Extract.self, List.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "What a bundle holds: the instance, QEMU, the verdict, its files, its traces and the last serial lines.",
            discussion: "The bundle is checked (format, every file's size and sha256) before anything is shown; a damaged one exits 2.")

        @Argument(help: "The bundle.")
        var bundle: String

        @Option(name: [.customShort("o"), .long], help: "Output format: text or json.")
        var output = "text"

        @Option(help: "How many of the last serial lines to show per device.")
        var lines = 10

        func validate() throws {
            if output != "text" && output != "json" { throw ValidationError("-o: expected text or json, got \(output)") }
            if lines < 0 { throw ValidationError("--lines: \(lines); give 0 or more") }
        }

        func run() async throws {
            let env = Environment.variables
            let dir = try StagingDirectory.make("bundle", environment: env)
            defer { RuntimeDirectory.removeTree(dir) }
            let m = try await BundleArchive.open(bundle, into: dir)
            var tails: [String: [String]] = [:]
            for f in m.files where f.role == .serialOutput {
                let bytes = FileManager.default.contents(atPath: dir + "/" + f.path) ?? Data()
                let text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\r", with: "")
                let all = text.split(separator: "\n").map(String.init)
                tails[(f.board.map { $0 + "/" } ?? "") + (f.device ?? f.path)] = Array(all.suffix(lines))
            }
            if output == "json" {
                struct Shown: Encodable {
                    var manifest: BundleManifest
                    var lastSerialLines: [String: [String]]
                    /// The manifest's traces again, for a reader that wants only them.
                    var traces: [BundleFile]
                }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                let data = try encoder.encode(Shown(manifest: m, lastSerialLines: tails, traces: m.files.filter(\.isTrace)))
                printOut(String(decoding: data, as: UTF8.self))
                return
            }
            var out = """
                Instance:   \(m.instance.namespace)/\(m.instance.name) (machine \(m.instance.machine))\(Self.boardLine(m))
                Recorded:   \(m.createdAt) by vtarget \(m.vtargetVersion) on \(m.host.kernel) \(m.host.architecture)
                QEMU:       \(m.qemu.binary): \(m.qemu.version) (sha256 \(m.qemu.sha256))
                icount:     shift=\(m.instance.icountShift)
                Verdict:    exit \(m.verdict.exitCode): \(m.verdict.reason)
                Files:

                """
            for f in m.files {
                let whose = [f.board, f.device].compactMap { $0 }.joined(separator: "/")
                out += "  \(f.path)  \(f.role.rawValue)\(whose.isEmpty ? "" : " (\(whose))")  \(f.size) bytes  sha256 \(f.sha256)\n"
            }
            for i in m.omittedImages {
                out += "  (not included) \(i.name)  \(i.size) bytes  sha256 \(i.sha256)\n"
            }
            out += Self.traceLines(m)
            for (device, lines) in tails.sorted(by: { $0.key < $1.key }) {
                out += "Last serial lines of \(device):\n"
                for l in lines { out += "  " + l + "\n" }
            }
            printOut(out, terminator: "")
        }

        /// With several boards, each with its machine (each replays alone:
        /// `replay --board NAME`); nothing for one.
        static func boardLine(_ m: BundleManifest) -> String {
            guard let boards = m.boards else { return "" }
            return "\nBoards:     " + boards.map { "\($0.name) (machine \($0.machine))" }.joined(separator: ", ")
        }

        /// `Traces:` and one line per trace (what, whose, how many), or nothing
        /// for a bundle without any (written before traces, or a run nobody typed at).
        static func traceLines(_ m: BundleManifest) -> String {
            let traces = m.files.filter(\.isTrace)
            guard !traces.isEmpty else { return "" }
            var out = "Traces" + (m.traceOrigin.map { " (second 0 = \($0))" } ?? "") + ":\n"
            for t in traces {
                let unit = switch t.role {
                case .canTrace: "frames"
                case .pcap: "packets"
                default: "lines"
                }
                let what = switch t.role {
                case .serialInput: "serial input"
                case .canTrace: "CAN frames (candump -L)"
                case .qmpTrace: "QMP messages"
                case .pcap: "network packets"
                default: t.role.rawValue
                }
                let whose = [t.board, t.device].compactMap { $0 }.joined(separator: "/")
                out += "  \(what)\(whose.isEmpty ? "" : " of \(whose)"): \(t.entries.map { "\($0) \(unit)" } ?? "\(t.size) bytes")  \(t.path)\n"
            }
            return out
        }
    }

    struct Extract: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "extract",
            abstract: "Unpack a bundle, after checking it, into a directory (default: the bundle's name without .vtb).")

        @Argument(help: "The bundle.")
        var bundle: String

        @Option(name: .customShort("C"), help: "The directory to unpack into; it must not exist yet.")
        var directory: String?

        func run() async throws {
            let env = Environment.variables
            let base = String(bundle.split(separator: "/").last ?? "bundle")
            let target = directory ?? (base.hasSuffix(".vtb") ? String(base.dropLast(4)) : base + ".d")
            if FileManager.default.fileExists(atPath: target) {
                throw RuntimeError("-C \(target): already exists; give a new directory to unpack into", code: .badInput)
            }
            let dir = try StagingDirectory.make("bundle", environment: env)
            defer { RuntimeDirectory.removeTree(dir) }
            let m = try await BundleArchive.open(bundle, into: dir)
            if mkdir(target, 0o755) != 0 {
                throw RuntimeError("cannot create \(target): \(String(cString: strerror(errno)))")
            }
            let fm = FileManager.default
            for rel in [BundleManifest.fileName] + m.files.map(\.path) {
                if let slash = rel.lastIndex(of: "/") {
                    try fm.createDirectory(atPath: target + "/" + String(rel[..<slash]), withIntermediateDirectories: true)
                }
                try fm.copyItem(atPath: dir + "/" + rel, toPath: target + "/" + rel)
            }
            printOut("\(target): \(m.files.count + 1) files")
        }
    }
}
