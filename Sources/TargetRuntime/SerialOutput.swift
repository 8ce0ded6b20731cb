import HostOS

/// Serial bytes to stdout: raw for one stream, `name/device| ` per line for several.
final class SerialOutput: @unchecked Sendable {
    let prefixed: Bool
    let names: [String]
    /// False under the supervisor: the logs keep the output, nobody reads stdout.
    let enabled: Bool
    private var partial: [String: [UInt8]] = [:]

    init(prefixed: Bool, names: [String], enabled: Bool = true) {
        self.prefixed = prefixed
        self.names = names
        self.enabled = enabled
    }

    func write(target: Int, device: String, _ bytes: [UInt8]) {
        guard enabled else { return }
        guard prefixed else { return writeAll(bytes) }
        let key = "\(names[target])/\(device)"
        var pending = partial[key, default: []] + bytes
        while let nl = pending.firstIndex(of: 0x0A) {
            writeAll(Array("\(key)| ".utf8) + pending[...nl])
            pending.removeFirst(nl + 1)
        }
        partial[key] = pending
    }

    func flush() {
        for (key, rest) in partial where !rest.isEmpty { writeAll(Array("\(key)| ".utf8) + rest + [0x0A]) }
        partial = [:]
    }

    private func writeAll(_ bytes: [UInt8]) { FileDescriptors.writeAll(1, bytes) }
}
