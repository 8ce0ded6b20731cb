/// The last `capacity` bytes of a stream, for clients that join late.
public struct ReplayBuffer: Sendable {
    public let capacity: Int
    private var storage: [UInt8] = []
    private var head = 0

    public init(capacity: Int = 64 << 10) { self.capacity = capacity }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        if bytes.count >= capacity {
            storage = Array(bytes.suffix(capacity))
            head = 0
            return
        }
        if storage.count < capacity {
            let room = capacity - storage.count
            storage.append(contentsOf: bytes.prefix(room))
            let rest = bytes.dropFirst(room)
            if rest.isEmpty { return }
            for b in rest { storage[head] = b; head = (head + 1) % capacity }
            return
        }
        for b in bytes { storage[head] = b; head = (head + 1) % capacity }
    }

    public var contents: [UInt8] {
        storage.count < capacity ? storage : Array(storage[head...] + storage[..<head])
    }
}
