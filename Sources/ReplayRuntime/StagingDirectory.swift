#if canImport(Glibc)
import Glibc
#endif
import HostOS

/// A new directory only we can enter (mkdtemp: 0700, a name nobody could
/// have prepared), under $TMPDIR or /tmp: where a recording is gathered
/// and a bundle extracted. The caller removes it.
public enum StagingDirectory {
    public static func make(_ purpose: String, environment: [String: String]) throws(RuntimeError) -> String {
        var template = Array(((environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp") + "/vtarget-\(purpose)-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw RuntimeError("cannot create a private directory for the \(purpose) under \(environment["TMPDIR"] ?? "/tmp"): \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }
}
