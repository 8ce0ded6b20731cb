import HostOS
import Synchronization

/// Serial bytes to stdout: raw for one stream, `name/device| ` per line for
/// several. Bytes are taken as the hub reads them (on the event loop) and
/// written by a task of their own, in order: not behind the session's events,
/// where a guest's first line waited for the start's bookkeeping and a hop
/// through the machine (2-3 ms of the seed's banner), and not on the event
/// loop, where a stdout nobody reads would stall QMP and the serial clients.
/// `finish` ends the output (the run is ending): what came before it is
/// written, a partial line of a prefixed stream with a newline; nothing after.
final class SerialOutput: Sendable {
    private enum Item: Sendable {
        case bytes(target: Int, device: String, [UInt8])
        case finish
    }

    /// Open until `finish`; yields happen under it, so none comes after the end.
    private let sink: Mutex<AsyncStream<Item>.Continuation?>
    private let writer: Task<Void, Never>?

    /// `enabled` is false under the supervisor: the logs keep the output,
    /// nobody reads stdout. `emit` writes (stdout; a test collects).
    init(prefixed: Bool, names: [String], enabled: Bool = true,
         emit: @escaping @Sendable ([UInt8]) -> Void = { FileDescriptors.writeAll(1, $0) }) {
        guard enabled else {
            sink = Mutex(nil)
            writer = nil
            return
        }
        let (items, continuation) = AsyncStream.makeStream(of: Item.self)
        sink = Mutex(continuation)
        writer = Task.detached {
            var partial: [String: [UInt8]] = [:]
            for await item in items {
                switch item {
                case .bytes(let target, let device, let bytes):
                    guard prefixed else {
                        emit(bytes)
                        continue
                    }
                    let key = "\(names[target])/\(device)"
                    var pending = partial[key, default: []] + bytes
                    while let nl = pending.firstIndex(of: 0x0A) {
                        emit(Array("\(key)| ".utf8) + pending[...nl])
                        pending.removeFirst(nl + 1)
                    }
                    partial[key] = pending
                case .finish:
                    for (key, rest) in partial.sorted(by: { $0.key < $1.key }) where !rest.isEmpty { emit(Array("\(key)| ".utf8) + rest + [0x0A]) }
                    return
                }
            }
        }
    }

    /// From any thread; in order of the calls.
    func write(target: Int, device: String, _ bytes: [UInt8]) {
        sink.withLock { _ = $0?.yield(.bytes(target: target, device: device, bytes)) }
    }

    /// The end of the output: nothing written after this is.
    func finish() {
        sink.withLock {
            $0?.yield(.finish)
            $0?.finish()
            $0 = nil
        }
    }

    /// Once everything before `finish` is on stdout.
    func drained() async {
        finish()
        await writer?.value
    }
}
