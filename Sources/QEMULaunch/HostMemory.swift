import MachineCatalog

/// Guest memory against the host's physical memory (`HostFacts.memoryBytes`,
/// MemTotal): a board or VM asking for more is the user's input to fix,
/// refused before anything starts, not left to fail in QEMU's allocation or
/// the OOM killer. Boards and VMs share this one rule and its words.
public enum HostMemory {
    /// Why `guestBytes` cannot run on a host of `hostBytes`; nil when it fits
    /// or the host's memory is unknown.
    public static func refusal(guestBytes: UInt64, hostBytes: UInt64?) -> String? {
        guard let host = hostBytes, guestBytes > host else { return nil }
        return "\(Quantity.format(guestBytes)) is more than this host's memory (\(Quantity.format(host)), MemTotal in /proc/meminfo); "
            + "give at most \(Quantity.format(host / (1 << 20) * (1 << 20))), less than that to leave room for the host"
    }
}
