#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How the supervisor starts a shim: `vtarget run --shim JSON`, where JSON is
/// this value. One codec builds and parses it, so the two sides cannot drift;
/// the options that a user's `vtarget run` also has are translated by the
/// shim into the same settings a user's flags would give.
public struct ShimArguments: Codable, Sendable, Equatable {
    /// `namespace/name`: the one instance of the spec to run.
    public var instance: String
    /// The composed spec (instance, target, ConfigMaps).
    public var specFile: String
    /// Where the shim writes its `ShimStatus`.
    public var statusFile: String
    /// Relative paths in the spec resolve against the directory it was applied from.
    public var relativeTo: String
    public var lenient: Bool = false
    public var allowHostPaths: Bool = false
    public var allowExtraArgs: Bool = false
    public var sandbox: Bool = true
    /// A pool member: `savevm` once Ready, so a release can `loadvm`.
    public var poolSnapshot: Bool = false
    /// What is left of the instance's TTL, in milliseconds.
    public var ttlMilliseconds: Int?
    /// Who the instance's sidecars run as (nil: the shim's own user, for
    /// resources applied before owners were recorded).
    public var sidecarOwner: ProcessOwner?
    /// `vtarget start --paused`: the guest's CPUs stay stopped (QEMU's `-S`) until `vtarget resume`.
    public var startPaused: Bool = false
    /// Where the instance's recorded runs go (`<state>/bundles/<namespace>/<name>`),
    /// outside its state directory so `delete` keeps them. Given for every
    /// board; the shim records only when the spec says `record: true`.
    /// Optional, so a shim reads the arguments of a supervisor without it.
    public var bundleDirectory: String?

    public init(instance: String, specFile: String, statusFile: String, relativeTo: String) {
        self.instance = instance
        self.specFile = specFile
        self.statusFile = statusFile
        self.relativeTo = relativeTo
    }

    public static let subcommand = "run"
    public static let option = "--shim"

    /// The shim's argv after the executable. `-f` repeats the spec file so a
    /// process listing reads as what it is; the JSON is what counts.
    public func arguments() -> [String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings, bools and ints cannot fail.
        let json = (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return [Self.subcommand, "-f", specFile, Self.option, json]
    }

    /// The value of `--shim`.
    public static func parse(_ json: String) throws -> ShimArguments {
        try JSONDecoder().decode(ShimArguments.self, from: Data(json.utf8))
    }

    /// The instance's namespace and name.
    public var namespaceAndName: (namespace: String, name: String) {
        guard let slash = instance.firstIndex(of: "/") else { return ("default", instance) }
        return (String(instance[..<slash]), String(instance[instance.index(after: slash)...]))
    }
}

/// Who a tenant's host processes (sidecars) run as: the user that applied
/// the resource, as the supervisor saw it on its socket (SO_PEERCRED), never
/// the supervisor's own identity.
public struct ProcessOwner: Codable, Sendable, Equatable, Hashable {
    public var uid: UInt32
    public var gid: UInt32
    /// Supplementary groups.
    public var groups: [UInt32]

    public init(uid: UInt32, gid: UInt32, groups: [UInt32]) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }
}
