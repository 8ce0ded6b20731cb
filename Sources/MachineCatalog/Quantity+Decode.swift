import YAMLTree

extension DecodeContext {
    /// A byte quantity (`128Mi`, `1G`, plain bytes) at `path`, bounded by
    /// `Quantity.maxBytes`; nil with the error recorded otherwise. One reader
    /// for every kind (boards' memory and disks, VMs' memory and volumes).
    public func bytes(_ v: YAMLNode, _ path: String) -> UInt64? {
        guard let s = v.scalar else {
            error(v, path, "expected \(Quantity.syntaxHint), got \(describe(v))")
            return nil
        }
        do { return try Quantity.bytes(s) } catch {
            self.error(v, path, error.description)
            return nil
        }
    }
}
