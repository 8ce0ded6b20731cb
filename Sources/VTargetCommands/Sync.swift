import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import GitOpsSync
import HostOS
import InstanceContract
import YAMLTree

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Make the supervisor hold what a directory of YAML describes (GitOps); --watch keeps it so.",
        discussion: """
            Applies what is new or changed (instances restart when their spec changed) and reports each object: \
            created, configured, unchanged, pruned. Every object sync applies carries the annotation \
            \(SyncMark.annotation): <the directory's real path>; --prune deletes the stored objects with that mark \
            that no file has any more, never what `vtarget apply` made. The whole directory is validated first: \
            a directory that fails validation changes nothing (exit 2, with file:line:column). \
            --watch syncs again whenever a file below DIR changes (inotify, 150 ms after the last change), \
            reports a bad file and keeps the last good state, and ends on SIGINT/SIGTERM.
            """)

    @Argument(help: "The directory (or one file) of YAML.") var directory: String

    @Flag(name: [.customShort("R"), .long], help: "Read (and watch) subdirectories too.")
    var recursive = false

    @Flag(help: "Delete stored objects sync applied from this directory that no file has any more.")
    var prune = false

    @Flag(help: "Print what would happen; change nothing.")
    var dryRun = false

    @Flag(help: "Keep running: sync again when files change.")
    var watch = false

    @OptionGroup var decoding: DecodeFlags

    func validate() throws {
        var st = stat()
        guard stat(directory, &st) == 0 else { throw ValidationError("\(directory): \(String(cString: strerror(errno)))") }
        if watch && (st.st_mode & S_IFMT) != S_IFDIR { throw ValidationError("--watch needs a directory; \(directory) is not one") }
    }

    /// The mark's value: the directory's real path, the same however it is spelled.
    var owner: String {
        guard let p = realpath(directory, nil) else { return directory }
        defer { free(p) }
        return String(cString: p)
    }

    func run() async throws {
        let client = try await SupervisorConnection.ensure()
        guard watch else { return try await once(client, quietWhenUnchanged: false) }
        let watcher = try await Self.run { try DirectoryWatch(root: directory, recursive: recursive) }
        enum Event { case changed, stop }
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        // A stopping signal ends the loop after the sync under way; should that hang, the process ends anyway.
        let signals = SignalWatch([SIGINT, SIGTERM], exitAfter: 10) { _ in sink.yield(.stop) }
        defer { signals.cancel() }
        printError("sync: watching \(owner)\(recursive ? " recursively" : "") (Ctrl-C to stop)")
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in watcher.changes { sink.yield(.changed) }
            }
            await pass(client, quietWhenUnchanged: false)
            for await e in events {
                if case .stop = e { break }
                await pass(client, quietWhenUnchanged: true)
            }
            watcher.stop()
            sink.finish()
        }
    }

    /// One sync under --watch: a failure is reported and the watch goes on.
    private func pass(_ client: ControlClient, quietWhenUnchanged: Bool) async {
        do { try await once(client, quietWhenUnchanged: quietWhenUnchanged) } catch let e as CommandExit {
            printError("sync: nothing changed (exit \(e.code) without --watch); waiting for the next change")
        } catch {
            _ = VTarget.exitCode(reporting: error)
            printError("sync: nothing changed; waiting for the next change")
        }
    }

    /// Reads and validates every file, plans, and (unless --dry-run) applies and prunes.
    private func once(_ client: ControlClient, quietWhenUnchanged: Bool) async throws {
        var input = try InputOptions.parse(["-f", directory] + (recursive ? ["-R"] : []))
        input.decoding = decoding
        let owner = self.owner
        let loaded = try ResourceFiles.loadWithSources(input.selection, allowEmpty: true).map { r, root in
            let marked = SyncMark.mark(root, owner: owner)
            var resource = r
            resource.yaml = YAMLEmitter.emit(marked)
            return (resource: resource, root: root)
        }
        let sync = GitOpsSync(client: client)
        let plan = try await Self.run { try await sync.plan(loaded.map(\.resource), prune: prune ? .managedBy(owner) : .none) }
        if dryRun {
            for s in plan.steps { printOut("\(Table.qualified(s.kind))/\(s.name) \(s.action.rawValue) (dry run): \(s.reason)") }
            return
        }
        let done: [SyncPlan.Step]
        do { done = try await sync.execute(plan) } catch where error.code == .rejected {
            for line in ApplyDiagnostics(sources: loaded).render(error.diagnostics) { printError(line) }
            throw CommandExit(code: ExitCode.badInput)
        } catch {
            throw Self.commandError(error)
        }
        for s in done where !(quietWhenUnchanged && s.action == .unchanged) {
            printOut("\(Table.qualified(s.kind))/\(s.name) \(s.action.rawValue)")
        }
    }

    /// Runs `body`; a SyncError becomes what the CLI reports and exits with.
    static func run<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let e as SyncError { throw commandError(e) }
    }

    static func commandError(_ e: SyncError) -> any Error {
        switch e.code {
        case .rejected:
            for d in e.diagnostics {
                printError("\(d.kind) \(d.namespace)/\(d.name): error: " + (d.field.map { "\($0): " } ?? "") + d.message)
            }
            return CommandExit(code: ExitCode.badInput)
        case .supervisor, .diffTool, .watch:
            return RuntimeError(e.message)
        }
    }
}
