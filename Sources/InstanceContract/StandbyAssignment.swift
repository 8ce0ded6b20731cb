#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a standby shim (`vtarget --standby-shim PADDING`, started by the
/// supervisor before any instance needs it) is told when one does: the argv
/// a shim spawned for that instance would have had, its working directory
/// and its log. On the standby's stdin, framed as a 4-byte big-endian length
/// and that much JSON; the go byte (`ShimArguments`' protocol) follows on the
/// same pipe once the supervisor has recorded the pid.
public struct StandbyAssignment: Codable, Sendable, Equatable {
    /// After the executable: `ShimArguments.arguments()`.
    public var arguments: [String]
    public var workingDirectory: String
    /// Opened for appending as stdout and stderr.
    public var log: String

    public init(arguments: [String], workingDirectory: String, log: String) {
        self.arguments = arguments
        self.workingDirectory = workingDirectory
        self.log = log
    }

    public static let option = "--standby-shim"
    /// The standby's argv is `[executable, option, padding]`: its process
    /// title takes the assigned argv in place (see `fits`), so `ps`, the
    /// supervisor's orphan scan and every tool that reads
    /// `/proc/PID/cmdline` see the shim it became. A shim's argv is its
    /// JSON arguments and their paths, well under this.
    public static let padding = String(repeating: " ", count: 8192)
    /// Larger than any assignment the supervisor writes: a frame that says
    /// more is not one.
    public static let maxFrame = 1 << 20

    /// The standby's own argv, whose bytes the title reuses.
    public static func standbyArguments() -> [String] { [option, padding] }

    /// Whether `arguments` (after `executable`) fit the title space of a
    /// standby started with `standbyArguments()`: every argument with its NUL.
    public static func fits(_ arguments: [String], executable: String) -> Bool {
        titleBytes([executable] + arguments) <= titleBytes([executable] + standbyArguments())
    }

    static func titleBytes(_ argv: [String]) -> Int { argv.reduce(0) { $0 + $1.utf8.count + 1 } }

    /// The frame the supervisor writes.
    public func framed() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Strings only: encoding cannot fail.
        let json = (try? encoder.encode(self)).map(Array.init) ?? Array("{}".utf8)
        let n = UInt32(json.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + json
    }

    /// The length a frame's 4-byte header announces, nil when it cannot be one.
    public static func frameLength(_ header: [UInt8]) -> Int? {
        guard header.count == 4 else { return nil }
        let n = header.reduce(0) { $0 << 8 | Int($1) }
        return n > 0 && n <= maxFrame ? n : nil
    }

    /// The assignment in a frame's body.
    public static func parse(_ body: [UInt8]) throws -> StandbyAssignment {
        try JSONDecoder().decode(StandbyAssignment.self, from: Data(body))
    }
}
