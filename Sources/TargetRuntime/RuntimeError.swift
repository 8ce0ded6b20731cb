/// Failures of the runtime layer: the environment, files, QEMU. Bad input
/// (YAML, flags) is a `DiagnosticError` instead and exits 2.
public struct RuntimeError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
