/// Failures of the host side: the environment, files, processes, QEMU. Bad
/// input (YAML, flags) is mostly a `DiagnosticError` and exits 2; of these,
/// only `.badInput` does too, everything else exits 1.
public struct RuntimeError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure, for the exit code and for callers that retry.
    public enum Code: String, Sendable {
        /// Something the user wrote cannot work (exit 2).
        case badInput
        /// A file, command, instance or bus that is not there.
        case notFound
        case io
        /// QEMU's monitor refused or did not answer.
        case qmp
        /// A child process could not be started.
        case spawn
        case timeout
    }

    public var code: Code
    public var message: String
    /// The error underneath, when there is one: for logs and debugging,
    /// never part of `description` (messages stay as users know them).
    public var cause: (any Error)?

    public init(_ message: String, code: Code = .io, cause: (any Error)? = nil) {
        self.message = message
        self.code = code
        self.cause = cause
    }

    public var description: String { message }
}
