#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// QEMU's JSON option syntax (`-blockdev {...}`, `-device {...}`). QEMU reads
/// an argument that starts with `{` as JSON and checks it against its schema,
/// so values keep their types and nothing is `,,`-escaped: `QEMUOption` is the
/// one place for that, and only for key=value arguments.
public enum QEMUJSON {
    public static func argument(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        // Sorted keys: the same plan is the same argv, byte for byte (goldens).
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Strings, booleans and integers only: encoding cannot fail.
        return String(decoding: try! encoder.encode(value), as: UTF8.self)
    }
}
