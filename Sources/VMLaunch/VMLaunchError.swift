import YAMLTree

/// Why a VM cannot be planned. `badInput`: the VM asks for what QEMU or this
/// planner cannot do (exit 2, each problem positioned at its field);
/// `missingHostInput`: the runtime did not resolve something the VM needs
/// (a disk's file, the firmware), a bug or a failed preparation upstream.
public struct VMLaunchError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable { case badInput, missingHostInput }

    public var code: Code
    /// Every problem found, so a user fixes them in one go.
    public var diagnostics: [Diagnostic]

    public init(_ code: Code, _ diagnostics: [Diagnostic]) {
        self.code = code
        self.diagnostics = diagnostics
    }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
