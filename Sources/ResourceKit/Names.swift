/// Kubernetes' rules for names, which vtarget keeps so that the same YAML
/// applies to a cluster.
public enum Names {
    /// DNS-1123 label: what Kubernetes demands of names, and safe in paths and QEMU ids.
    public static func isDNSLabel(_ s: some StringProtocol) -> Bool {
        let u = Array(s.utf8)
        func ok(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) }
        guard let first = u.first, let last = u.last, u.count <= 63, ok(first), ok(last) else { return false }
        return u.allSatisfy { ok($0) || $0 == 0x2D }
    }

    /// A label value, or a label key's name part: letters, digits, '-', '_',
    /// '.', at most 63, starting and ending with a letter or digit.
    public static func isQualifiedName(_ s: some StringProtocol) -> Bool {
        let u = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) }
        guard let first = u.first, let last = u.last, u.count <= 63, alnum(first), alnum(last) else { return false }
        return u.allSatisfy { alnum($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
    }
}
