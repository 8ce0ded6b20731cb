#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Base64 as manifests carry it (a ConfigMap's `binaryData`, a Secret's
/// `data`, KubeVirt's `userDataBase64`): line breaks and indentation may
/// split it anywhere.
public enum Base64Value {
    /// The bytes, or nil when the text is not base64 once ASCII whitespace
    /// is dropped. Dropped byte by byte: a firmware image is tens of
    /// thousands of characters, and `Character.isWhitespace` on each cost
    /// 0.6 ms of every run that loaded one.
    public static func decode(_ text: String) -> [UInt8]? {
        let compact = text.utf8.filter { !(0x09...0x0D).contains($0) && $0 != 0x20 }
        return Data(base64Encoded: Data(compact)).map { [UInt8]($0) }
    }
}
