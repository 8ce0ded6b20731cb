#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The files of a cloud-init seed, laid out as cloud-init's NoCloud and
/// ConfigDrive data sources read them. No I/O: `CloudInitSeed` writes them.
public struct CloudInitFiles: Sendable, Equatable {
    public enum Flavor: String, Sendable, CaseIterable {
        /// KubeVirt's `cloudInitNoCloud`: meta-data, user-data, network-config.
        case noCloud = "NoCloud"
        /// KubeVirt's `cloudInitConfigDrive`: OpenStack's openstack/latest/ layout.
        case configDrive = "ConfigDrive"

        /// The filesystem label each data source looks for; cloud-init finds
        /// the seed by it, not by bus or device name.
        public var volumeLabel: String {
            switch self {
            case .noCloud: "cidata"
            case .configDrive: "config-2"
            }
        }
    }

    public struct File: Sendable, Equatable {
        /// Relative to the seed's root, `/`-separated.
        public var path: String
        public var contents: [UInt8]

        public init(path: String, contents: [UInt8]) {
            self.path = path
            self.contents = contents
        }
    }

    public var flavor: Flavor
    /// In the order they are written; paths are unique.
    public var files: [File]

    public var volumeLabel: String { flavor.volumeLabel }

    /// KubeVirt's default instance-id, `name.namespace`: stable across
    /// restarts of one VM, so cloud-init runs its per-instance modules (user
    /// creation, SSH host keys, runcmd) once, not on every boot.
    public static func stableInstanceID(name: String, namespace: String) -> String {
        "\(name).\(namespace)"
    }

    /// - Parameters:
    ///   - instanceID: cloud-init reruns per-instance modules when it changes.
    ///   - hostname: an RFC 1123 host name (the guest's `hostname`).
    ///   - userData: as given (a `#cloud-config`, a `#!` script, a MIME
    ///     multipart, gzip); nil writes an empty `user-data` for NoCloud,
    ///     which cloud-init requires, and no `user_data` for ConfigDrive.
    ///   - networkConfig: NoCloud's `network-config` (YAML, version 1 or 2)
    ///     or ConfigDrive's `network_data.json` (JSON); nil leaves it out and
    ///     cloud-init falls back to DHCP on the first interface.
    public init(flavor: Flavor, instanceID: String, hostname: String, userData: [UInt8]?, networkConfig: String?) throws(CloudInitSeedError) {
        try Self.check(instanceID: instanceID)
        try Self.check(hostname: hostname)
        self.flavor = flavor
        switch flavor {
        case .noCloud:
            let meta = "instance-id: \(Self.yamlScalar(instanceID))\nlocal-hostname: \(Self.yamlScalar(hostname))\n"
            files = [File(path: "meta-data", contents: Array(meta.utf8)), File(path: "user-data", contents: userData ?? [])]
            if let networkConfig { files.append(File(path: "network-config", contents: Array(networkConfig.utf8))) }
        case .configDrive:
            let meta = ConfigDriveMetaData(uuid: instanceID, hostname: hostname, name: hostname)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            // Encoding three strings cannot fail.
            let json: [UInt8] = (try? encoder.encode(meta)).map { [UInt8]($0) + [0x0A] } ?? []
            files = [File(path: "openstack/latest/meta_data.json", contents: json)]
            if let userData { files.append(File(path: "openstack/latest/user_data", contents: userData)) }
            if let networkConfig {
                guard (try? JSONDecoder().decode([String: AnyJSON].self, from: Data(networkConfig.utf8))) != nil else {
                    throw CloudInitSeedError(.badInput, field: "networkData",
                                             "ConfigDrive network data is not a JSON object; OpenStack's network_data.json format is JSON ({\"links\": [...], \"networks\": [...]})")
                }
                files.append(File(path: "openstack/latest/network_data.json", contents: Array(networkConfig.utf8)))
            }
        }
    }

    private struct ConfigDriveMetaData: Encodable {
        var uuid: String
        var hostname: String
        var name: String
    }

    /// Any JSON value: decoding into it is the syntax check.
    private enum AnyJSON: Decodable {
        case value
        init(from decoder: any Decoder) throws {
            if var array = try? decoder.unkeyedContainer() {
                while !array.isAtEnd { _ = try array.decode(AnyJSON.self) }
            } else if let object = try? decoder.container(keyedBy: AnyKey.self) {
                for key in object.allKeys { _ = try object.decode(AnyJSON.self, forKey: key) }
            } else {
                let single = try decoder.singleValueContainer()
                if single.decodeNil() { self = .value; return }
                if (try? single.decode(Bool.self)) != nil || (try? single.decode(Double.self)) != nil { self = .value; return }
                _ = try single.decode(String.self)
            }
            self = .value
        }
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static func check(instanceID: String) throws(CloudInitSeedError) {
        guard !instanceID.isEmpty else {
            throw CloudInitSeedError(.badInput, field: "instanceID", "the instance-id is empty; cloud-init needs one (default: name.namespace)")
        }
        guard instanceID.utf8.count <= 255, instanceID.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw CloudInitSeedError(.badInput, field: "instanceID", "instance-id '\(instanceID.debugDescription.dropFirst().dropLast())' must be at most 255 bytes with no control characters")
        }
    }

    /// RFC 1123: labels of 1-63 letters, digits and hyphens, not starting or
    /// ending with a hyphen, 253 bytes in all. cloud-init passes the name to
    /// `hostname`, which refuses anything else.
    static func check(hostname: String) throws(CloudInitSeedError) {
        let labels = hostname.split(separator: ".", omittingEmptySubsequences: false)
        let valid = !hostname.isEmpty && hostname.utf8.count <= 253 && labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }
        }
        guard valid else {
            throw CloudInitSeedError(.badInput, field: "hostname",
                                     "hostname '\(hostname)' is not a valid host name: use dot-separated labels of 1-63 letters, digits and '-' (not first or last), 253 characters at most")
        }
    }

    /// A YAML scalar that reads back as the same string: plain when that is
    /// unambiguous, otherwise double-quoted (a hostname "1234" or "yes" would
    /// otherwise become a number or a boolean). Control characters never get
    /// here: `check(instanceID:)` refuses them.
    static func yamlScalar(_ s: String) -> String {
        let plainSafe = s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-._".unicodeScalars.contains($0)) }
        let reserved: Set<String> = ["y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"]
        let looksNumeric = s.first.map { ("0"..."9").contains($0) || $0 == "." || $0 == "-" } ?? true
        if plainSafe && !reserved.contains(s.lowercased()) && !looksNumeric { return s }
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
