import ControlAPI

/// Every failure of this module: a code the CLI maps to its exit status, and the cause.
public struct SyncError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The supervisor could not be reached, or failed.
        case supervisor
        /// The supervisor refused the resources (422): each problem is in `diagnostics`.
        case rejected
        /// `diff` could not run, or failed.
        case diffTool
        /// inotify refused a watch.
        case watch
    }

    public var code: Code
    public var message: String
    public var diagnostics: [APIDiagnostic] = []

    public init(_ code: Code, _ message: String, diagnostics: [APIDiagnostic] = []) {
        self.code = code
        self.message = message
        self.diagnostics = diagnostics
    }

    init(_ e: ControlError) {
        if e.status == 422, !e.diagnostics.isEmpty {
            self.init(.rejected, e.message, diagnostics: e.diagnostics)
        } else {
            self.init(.supervisor, e.message)
        }
    }

    public var description: String { message }
}
