/// An Ethernet address as QEMU's `mac=` takes it: six lowercase hex pairs.
public struct MACAddress: Sendable, Equatable, CustomStringConvertible {
    public var bytes: [UInt8]

    /// Six pairs separated by `:` or `-` (what KubeVirt's `macAddress` accepts);
    /// nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: text.contains("-") ? "-" : ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard p.count == 2, let b = UInt8(p, radix: 16) else { return nil }
            out.append(b)
        }
        bytes = out
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// A group address cannot be a NIC's own: QEMU and guests refuse it.
    public var isMulticast: Bool { bytes[0] & 1 == 1 }

    /// The address a VM's interface gets when it names none: locally
    /// administered (`02:...`), unicast, and a function of namespace, VM and
    /// interface only, so the guest sees the same NIC (and keeps its DHCP
    /// lease and its udev names) from restart to restart.
    public static func derived(namespace: String, vm: String, interface: String) -> MACAddress {
        // FNV-1a over the three names, separated by a byte no name contains.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in (namespace + "\u{0}" + vm + "\u{0}" + interface).utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        var bytes: [UInt8] = [0x02]
        for i in 0..<5 { bytes.append(UInt8(truncatingIfNeeded: h >> (8 * UInt64(i)))) }
        return MACAddress(bytes: bytes)
    }

    public var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}
