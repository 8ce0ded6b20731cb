#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import HostOS
import TargetRuntime
import YAMLTree

/// Who is on the other end of the control socket, from SO_PEERCRED, with
/// the supplementary groups from /proc.
struct PeerCredentials: Sendable {
    var pid: Int32
    var uid: uid_t
    var gid: gid_t
    var groups: [gid_t]

    static func of(_ channel: any Channel) async -> PeerCredentials? {
        guard let provider = channel as? SocketOptionProvider,
              let cred: RawPeerCredentials = try? await provider.unsafeGetSocketOption(
                level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET),
                name: NIOBSDSocket.Option(rawValue: SO_PEERCRED)).get() else { return nil }
        var groups: [gid_t] = []
        if let text = try? String(contentsOfFile: "/proc/\(cred.pid)/status", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Groups:") }) {
            groups = line.dropFirst(7).split(separator: " ").compactMap { gid_t($0) }
        }
        return PeerCredentials(pid: cred.pid, uid: cred.uid, gid: cred.gid, groups: groups)
    }
}

/// `struct ucred` of <sys/socket.h>, which Glibc's module hides without _GNU_SOURCE.
struct RawPeerCredentials {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Which namespaces each user may touch through a shared supervisor
/// (`vtarget serve --socket-group G --policy FILE`). The supervisor's own
/// user and root may touch all; anyone else only what a rule gives them.
///
/// ```yaml
/// rules:
///   - users: [alice, 1001]     # names or uids
///     groups: [ci]             # names or gids (primary or supplementary)
///     namespaces: [ci, "team-*"]
/// ```
public struct AccessPolicy: Sendable {
    struct Rule: Sendable {
        var uids: Set<uid_t>
        var gids: Set<gid_t>
        var namespaces: [String]
    }

    struct Grant: Sendable {
        var all: Bool
        var namespaces: [String]

        func allows(_ ns: String) -> Bool {
            all || namespaces.contains { $0 == "*" || $0 == ns || ($0.hasSuffix("*") && ns.hasPrefix($0.dropLast())) }
        }
    }

    var rules: [Rule]
    let owner: uid_t

    /// Only the supervisor's user (and root).
    public init() {
        rules = []
        owner = getuid()
    }

    public init(file: String) throws {
        self.init()
        let docs: [YAMLDocument]
        do { docs = try YAMLParser.parse(try InputFiles.readFile(file), file: file) } catch {
            throw RuntimeError("policy: \(error)")
        }
        guard let root = docs.first?.root else { return }
        func fail(_ node: YAMLNode, _ field: String, _ msg: String) -> RuntimeError {
            RuntimeError("\(node.location): \(field): \(msg)")
        }
        guard case .mapping(let top) = root.content else { throw fail(root, "rules", "expected a mapping with rules: [...]") }
        for pair in top {
            guard pair.key.scalar == "rules" else { throw fail(pair.key, pair.key.scalar ?? "?", "unknown field; valid: rules") }
            guard case .sequence(let items) = pair.value.content else { throw fail(pair.value, "rules", "expected a list") }
            for (i, item) in items.enumerated() {
                guard case .mapping(let fields) = item.content else { throw fail(item, "rules[\(i)]", "expected a mapping") }
                var rule = Rule(uids: [], gids: [], namespaces: [])
                for f in fields {
                    let field = "rules[\(i)].\(f.key.scalar ?? "?")"
                    guard case .sequence(let values) = f.value.content else { throw fail(f.value, field, "expected a list") }
                    let words = values.compactMap(\.scalar)
                    switch f.key.scalar {
                    case "users":
                        for w in words {
                            if let n = uid_t(w) { rule.uids.insert(n) } else if let pw = getpwnam(w) { rule.uids.insert(pw.pointee.pw_uid) } else {
                                throw fail(f.value, field, "no user \"\(w)\"")
                            }
                        }
                    case "groups":
                        for w in words {
                            if let n = gid_t(w) { rule.gids.insert(n) } else if let gr = getgrnam(w) { rule.gids.insert(gr.pointee.gr_gid) } else {
                                throw fail(f.value, field, "no group \"\(w)\"")
                            }
                        }
                    case "namespaces": rule.namespaces = words
                    default: throw fail(f.key, field, "unknown field; valid: users, groups, namespaces")
                    }
                }
                rules.append(rule)
            }
        }
    }

    func grant(for peer: PeerCredentials?) -> Grant {
        guard let peer else { return Grant(all: false, namespaces: []) }
        if peer.uid == 0 || peer.uid == owner { return Grant(all: true, namespaces: []) }
        let gids = Set(peer.groups + [peer.gid])
        let ns = rules.filter { $0.uids.contains(peer.uid) || !$0.gids.isDisjoint(with: gids) }.flatMap(\.namespaces)
        return Grant(all: false, namespaces: ns)
    }
}
