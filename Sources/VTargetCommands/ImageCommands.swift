import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import DiskImages
import HostOS
import InstanceContract
import TargetRuntime
import YAMLTree

/// `vtarget image ...`: the local store of VM disk images. Only `pull`
/// talks to a registry; nothing else in vtarget ever fetches an image.
struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Manage the local, content-addressed store of VM disk images (qcow2 or raw).",
        discussion: "Images live in $VTARGET_STATE_DIR/images (else $XDG_STATE_HOME/vtarget/images, else ~/.local/state/vtarget/images), read-only, by sha256.",
        subcommands: [ImageImport.self, ImagePull.self, ImageList.self, ImageRemove.self, ImageInspect.self])

    /// The user's store, with qemu-img and tar from PATH.
    static func store() throws -> ImageStore {
        let env = Environment.variables
        return ImageStore(stateDirectory: SupervisorPaths(environment: env).stateDirectory, qemuImg: try QemuImg(environment: env),
                          tar: ExecutableSearch.find("tar", environment: env) ?? "/usr/bin/tar")
    }

    /// Runs `body`, turning a store error into its message and exit code:
    /// 2 for what the user wrote (a reference, a file that is no disk), 1 otherwise.
    static func reporting<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let e as ImageStoreError {
            printError("vtarget: image: \(e)")
            throw CommandExit(code: e.code == .badReference || e.code == .unsupportedImage ? InstanceContract.ExitCode.badInput : InstanceContract.ExitCode.failure)
        }
    }

    static func parse(_ text: String) async throws -> ImageStore.Reference {
        try await reporting { try ImageStore.Reference.parse(text) }
    }

    /// 2.0 GiB, 512 MiB, 4.0 KiB: binary units, as qemu-img shows them.
    static func size(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(bytes)
        var u = 0
        while v >= 1024, u < units.count - 1 { v /= 1024; u += 1 }
        if u == 0 { return "\(bytes) B" }
        let rounded = (v * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded)) \(units[u])" : "\(rounded) \(units[u])"
    }

    static func node(_ image: ImageStore.Image, path: String) -> [(String, YAMLNode?)] {
        [("digest", Table.str(image.digest.description)), ("format", Table.str(image.format.rawValue)),
         ("virtualSize", Table.plain("\(image.virtualSize)")), ("fileSize", Table.plain("\(image.fileSize)")),
         ("created", Table.str(image.created)), ("path", Table.str(path)),
         // A file tree's files, as kernelBoot's kernelPath and initrdPath name them.
         ("files", image.files.map { Table.seq($0.map { Table.str("/" + $0) }) }),
         ("source", Table.map([("type", Table.str(image.source.type)), ("file", image.source.file.map(Table.str)),
                               ("reference", image.source.reference.map(Table.str)),
                               ("manifest", image.source.manifest.map { Table.str($0.description) }),
                               ("platform", image.source.platform.map(Table.str))]))]
    }
}

struct ImageImport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Copy a qcow2 or raw disk, or a file tree (a directory or tar: kernelBoot's kernel and initrd), into the store under NAME[:TAG].",
        discussion: "The image must be self-contained: a qcow2 with a backing file is refused. The tag defaults to latest.")

    @Argument(help: "NAME[:TAG], e.g. cirros:0.6 or registry.example/team/disk:1")
    var name: String
    @Argument(help: "The disk image file, or a directory or tar archive of files.")
    var file: String

    func run() async throws {
        let ref = try await ImageCommand.parse(name)
        let store = try ImageCommand.store()
        let image = try await ImageCommand.reporting { try await store.importFile(file, as: ref) }
        printOut("imported \(ref.name):\(ref.effectiveTag ?? "latest") \(image.digest) (\(image.format.rawValue), \(ImageCommand.size(image.virtualSize)))")
    }
}

struct ImagePull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Fetch a containerDisk (the disk under /disk/) or kernelBoot image (its files) from an OCI/Docker registry.",
        discussion: """
            REF is HOST[:PORT]/REPOSITORY[:TAG] or HOST[:PORT]/REPOSITORY@sha256:<hex>. Registries on localhost, \
            127.0.0.1 or [::1] are reached over http, all others over https unless --insecure. Every blob is checked \
            against its sha256; on any failure nothing is stored. An image with nothing under /disk/ is kept as a \
            file tree, for kernelBoot's kernelPath and initrdPath.
            """)

    @Argument(help: "HOST[:PORT]/REPOSITORY[:TAG|@sha256:<hex>]")
    var reference: String
    @Option(help: "Store it as NAME[:TAG] instead of REF.")
    var name: String?
    @Flag(help: "Use plain http for a registry that is not on loopback.")
    var insecure = false
    @Option(help: "Platform to pick from a multi-arch image: amd64 (x86_64) or arm64 (aarch64).")
    var arch = "amd64"

    func run() async throws {
        let ref = try await ImageCommand.parse(reference)
        let local = try await name.asyncMap { try await ImageCommand.parse($0) }
        let architecture = try await ImageCommand.reporting { try OCIManifest.architecture(arch) }
        let store = try ImageCommand.store()
        let result = try await ImageCommand.reporting {
            try await store.pull(ref, options: .init(insecure: insecure, architecture: architecture, name: local)) { printError($0) }
        }
        printOut("pulled \(result.references.joined(separator: ", ")) \(result.image.digest) (\(result.image.format.rawValue), \(ImageCommand.size(result.image.virtualSize)))")
    }
}

struct ImageList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the images in the store.", aliases: ["list"])

    @Option(name: .shortAndLong, help: "json, yaml, or name (references only); a table by default.")
    var output: Format = .table

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, json, yaml, name }

    func run() async throws {
        let store = try ImageCommand.store()
        let entries = try await ImageCommand.reporting { try store.list() }
        switch output {
        case .name:
            for e in entries { if let r = e.reference { printOut(r) } }
        case .json, .yaml:
            let items = entries.map { e in
                Table.map([("reference", e.reference.map(Table.str)), ("name", e.name.map(Table.str)), ("tag", e.tag.map(Table.str))]
                          + ImageCommand.node(e.image, path: store.path(for: e.image.digest)))
            }
            printOut(output == .json ? Table.json(Table.seq(items)) : YAMLEmitter.emit(Table.seq(items)), terminator: output == .json ? "\n" : "")
        case .table:
            let rows = entries.map { e -> [String] in
                let tag = e.tag ?? (e.reference.map { $0.contains("@") ? "<digest>" : "" } ?? "<none>")
                return [e.name ?? "<none>", tag, e.image.digest.short, e.image.format.rawValue, ImageCommand.size(e.image.virtualSize), Self.age(e.image.created)]
            }
            printOut(Table.render([["NAME", "TAG", "DIGEST", "FORMAT", "SIZE", "CREATED"]] + rows))
        }
    }

    static func age(_ created: String) -> String {
        guard let date = try? Date(created, strategy: .iso8601) else { return created }
        return Table.age(date.timeIntervalSince1970)
    }
}

struct ImageRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove image references; an image whose last reference goes is deleted.",
        discussion: "REF is NAME[:TAG], NAME@sha256:<hex>, or sha256:<hex> (every reference to that image). All or nothing: if one REF is missing, none is removed.",
        aliases: ["remove"])

    @Argument(help: "NAME[:TAG], NAME@sha256:<hex> or sha256:<hex>")
    var references: [String] = []

    func validate() throws {
        guard !references.isEmpty else { throw ValidationError("name at least one image: NAME[:TAG], NAME@sha256:<hex> or sha256:<hex>") }
    }

    func run() async throws {
        let store = try ImageCommand.store()
        let removal = try await ImageCommand.reporting { try store.remove(references) }
        for r in removal.references { printOut("untagged \(r)") }
        for d in removal.deleted { printOut("deleted \(d)") }
    }
}

struct ImageInspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show an image as JSON: digest, format, sizes, references, source.")

    @Argument(help: "NAME[:TAG], NAME@sha256:<hex> or sha256:<hex>")
    var reference: String

    func run() async throws {
        let store = try ImageCommand.store()
        let (image, refs) = try await ImageCommand.reporting { try store.inspect(reference) }
        printOut(Table.json(Table.map(ImageCommand.node(image, path: store.path(for: image.digest)) + [("refs", Table.seq(refs.map(Table.str)))])))
    }
}

extension Optional {
    fileprivate func asyncMap<U>(_ transform: (Wrapped) async throws -> U) async rethrows -> U? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
