#if canImport(Glibc)
import Glibc
#endif
import Foundation
import DiskImages
import HostOS
import VMSpec

/// The EFI firmware a VM boots: found through QEMU's firmware descriptors
/// (`docs/interop/firmware.json`, the files Debian's `ovmf` and
/// `qemu-efi-aarch64` install in `/usr/share/qemu/firmware`), as libvirt
/// finds it, never by guessing file names.
public struct FirmwareFiles: Sendable, Equatable {
    /// The firmware's code, opened read-only by every VM.
    public var code: String
    /// The empty variable store each VM gets a copy of.
    public var varsTemplate: String
    /// The descriptor that named them, for messages.
    public var descriptor: String

    public init(code: String, varsTemplate: String, descriptor: String) {
        self.code = code
        self.varsTemplate = varsTemplate
        self.descriptor = descriptor
    }

    /// Where descriptors are searched, in the specification's order of
    /// precedence: a file in an earlier directory hides one of the same name
    /// in a later one (an empty file hides it altogether).
    public static func defaultDirectories(environment: [String: String]) -> [String] {
        let config = environment["XDG_CONFIG_HOME"] ?? (environment["HOME"].map { $0 + "/.config" })
        return (config.map { [$0 + "/qemu/firmware"] } ?? []) + ["/etc/qemu/firmware", "/usr/share/qemu/firmware"]
    }

    /// The first descriptor (by file name, the specification's priority)
    /// for UEFI in flash with a separate vars template, for this
    /// architecture and machine, without Secure Boot, enrolled keys or SMM
    /// (vtarget boots with `secureBoot: false` and no SMM).
    public static func find(architecture: VMSpec.Architecture, machineType: String,
                            directories: [String]) throws(RuntimeError) -> FirmwareFiles {
        var byName: [String: String] = [:]
        for dir in directories.reversed() {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { continue }
            for name in names where name.hasSuffix(".json") { byName[name] = dir + "/" + name }
        }
        let arch = architecture.qemuSuffix
        let machine = canonicalMachine(machineType)
        for name in byName.keys.sorted() {
            let path = byName[name]!
            guard let data = FileManager.default.contents(atPath: path), !data.isEmpty,
                  let d = try? JSONDecoder().decode(Descriptor.self, from: data) else { continue }
            guard d.interfaceTypes.contains("uefi"), d.mapping.device == "flash",
                  let code = d.mapping.executable?.filename, let vars = d.mapping.nvramTemplate?.filename,
                  d.mapping.executable?.format ?? "raw" == "raw",
                  d.features.allSatisfy({ !["secure-boot", "enrolled-keys", "requires-smm"].contains($0) }),
                  d.targets.contains(where: { t in t.architecture == arch && t.machines.contains { fnmatch($0, machine, 0) == 0 } })
            else { continue }
            return FirmwareFiles(code: code, varsTemplate: vars, descriptor: path)
        }
        let package = architecture == .amd64 ? "ovmf" : "qemu-efi-aarch64"
        throw RuntimeError("no UEFI firmware for \(arch) \(machineType) without Secure Boot in " + directories.joined(separator: ", ")
                           + "; install Debian's \(package)", code: .notFound)
    }

    /// A versionless machine as the descriptors' globs (`pc-q35-*`) see it.
    static func canonicalMachine(_ machineType: String) -> String {
        switch machineType {
        case "q35": return "pc-q35-latest"
        case "pc": return "pc-i440fx-latest"
        case "virt": return "virt-latest"
        default: return machineType
        }
    }

    /// This VM's vars at `path`, a qcow2: converted from the raw template
    /// the first time and kept afterwards, so boot entries the guest writes
    /// survive restarts. qcow2 because `savevm` refuses a VM with any
    /// writable raw node, and a pool member is snapshotted once Ready.
    /// `previous`: the raw copy an older vtarget kept, converted instead of
    /// the template so its boot entries are not lost.
    /// With `templates`, a conversion of the template is copied from the
    /// one made before (a `run` has a new directory at each start).
    /// Returns whether a copy was made.
    @discardableResult
    public func makeVars(at path: String, qemuImg: QemuImg, previous: String? = nil, templates: TemplateCache? = nil) async throws(RuntimeError) -> Bool {
        if FileManager.default.fileExists(atPath: path) { return false }
        let source = previous.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil } ?? varsTemplate
        let partial = path + ".partial"
        unlink(partial)
        do {
            try await qemuImg.convert(source, from: .raw, to: partial, format: .qcow2, templates: source == varsTemplate ? templates : nil)
        } catch {
            unlink(partial)
            throw RuntimeError("cannot make EFI vars \(path) from \(source): \(error)", code: .io, cause: error)
        }
        chmod(partial, 0o600)
        if rename(partial, path) != 0 {
            let why = String(cString: strerror(errno))
            unlink(partial)
            throw RuntimeError("cannot create \(path): \(why)", code: .io)
        }
        if source == previous { unlink(source) }
        return true
    }

    /// The part of `firmware.json`'s `Firmware` this needs.
    struct Descriptor: Decodable {
        struct File: Decodable {
            var filename: String
            var format: String?
        }
        struct Mapping: Decodable {
            var device: String
            var executable: File?
            var nvramTemplate: File?
            enum CodingKeys: String, CodingKey {
                case device, executable
                case nvramTemplate = "nvram-template"
            }
        }
        struct Target: Decodable {
            var architecture: String
            var machines: [String]
        }
        var interfaceTypes: [String]
        var mapping: Mapping
        var targets: [Target]
        var features: [String]
        enum CodingKeys: String, CodingKey {
            case mapping, targets, features
            case interfaceTypes = "interface-types"
        }
    }
}
