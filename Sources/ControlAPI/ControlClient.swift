import Foundation  // Thread
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import NIOHTTP1

public struct ControlError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status, or nil when the supervisor could not be reached.
    public var status: Int?
    public var message: String
    /// A 422's problems, each at its place in a stored resource.
    public var diagnostics: [APIDiagnostic] = []
    public var description: String { message }

    public init(status: Int?, message: String) {
        self.status = status
        self.message = message
    }
}

/// HTTP/1.1 over the supervisor's unix socket, one request per connection.
public struct ControlClient: Sendable {
    public let socketPath: String

    public init(socketPath: String) { self.socketPath = socketPath }

    /// Sends one request; the whole answer, or a ControlError with the supervisor's message.
    public func call(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil) async throws(ControlError) -> [UInt8] {
        var answer: [UInt8] = []
        let status = try await exchange(method, path, body: body) { chunk in
            answer += chunk
            return true
        }
        guard (200..<300).contains(status) else {
            let body = try? JSONDecoder().decode(APIErrorBody.self, from: Data(answer))
            var error = ControlError(status: status, message: body?.message ?? String(decoding: answer, as: UTF8.self))
            error.diagnostics = body?.diagnostics ?? []
            throw error
        }
        return answer
    }

    public func get<T: Decodable>(_ path: String, as type: T.Type = T.self) async throws(ControlError) -> T {
        try decode(try await call(.GET, path))
    }

    public func send<B: Encodable, T: Decodable>(_ method: HTTPMethod, _ path: String, _ body: B, as type: T.Type = T.self) async throws(ControlError) -> T {
        let data: Data
        do { data = try JSONEncoder().encode(body) } catch { throw ControlError(status: nil, message: "cannot encode the request: \(error)") }
        return try decode(try await call(method, path, body: Array(data)))
    }

    public func send<T: Decodable>(_ method: HTTPMethod, _ path: String, as type: T.Type = T.self) async throws(ControlError) -> T {
        try decode(try await call(method, path))
    }

    /// A streamed answer (`events?watch=1`), one JSON line at a time, until
    /// `line` returns false or the supervisor ends it.
    public func stream(_ path: String, line: @escaping (String) -> Bool) async throws(ControlError) {
        var pending: [UInt8] = []
        let status = try await exchange(.GET, path, body: nil) { chunk in
            pending += chunk
            while let nl = pending.firstIndex(of: 0x0A) {
                let text = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeFirst(nl + 1)
                if !line(text) { return false }
            }
            return true
        }
        guard (200..<300).contains(status) else {
            throw ControlError(status: status, message: String(decoding: pending, as: UTF8.self))
        }
    }

    private func decode<T: Decodable>(_ bytes: [UInt8]) throws(ControlError) -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
            throw ControlError(status: nil, message: "the supervisor answered something unexpected: \(error)")
        }
    }

    /// Connects, sends, and hands body chunks to `chunk` until it returns false.
    /// A plain socket read on a thread of its own (blocking reads must not
    /// hold a thread of Swift's pool: a watch would starve the requests
    /// beside it), parsed by `HTTPResponseReader`; `chunk` runs in the
    /// caller's task. Cancelling the task, or `chunk` returning false, shuts
    /// the socket down, which ends the thread's read.
    private func exchange(_ method: HTTPMethod, _ path: String, body: [UInt8]?,
                          chunk: ([UInt8]) -> Bool) async throws(ControlError) -> Int {
        let unreachable = { (why: String) in ControlError(status: nil, message: "cannot reach the supervisor at \(socketPath): \(why)") }
        let fd: Int32
        do { fd = try FileDescriptors.connectUnix(socketPath) } catch { throw unreachable("\(error)") }
        var head = "\(method.rawValue) \(path) HTTP/1.1\r\nHost: vtarget\r\nConnection: close\r\nContent-Length: \(body?.count ?? 0)\r\n"
        if body != nil { head += "Content-Type: application/json\r\n" }
        guard FileDescriptors.writeAll(fd, Array((head + "\r\n").utf8) + (body ?? [])) else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw unreachable(why)
        }
        let (parts, sink) = AsyncThrowingStream<HTTPResponseReader.Part, any Error>.makeStream()
        let socket = OwnedSocket(fd)
        let reader = Thread {
            defer { socket.close() }
            var response = HTTPResponseReader()
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            do {
                while !response.isComplete {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 { throw HTTPResponseReader.Malformed(description: String(cString: strerror(errno))) }
                    for part in n == 0 ? try response.finish() : try response.feed(buffer[..<n]) { sink.yield(part) }
                    if n == 0 { break }
                }
                sink.finish()
            } catch {
                sink.finish(throwing: error)
            }
        }
        reader.start()
        do {
            return try await withTaskCancellationHandler {
                var status = 0
                for try await part in parts {
                    switch part {
                    case .head(let code): status = code
                    case .body(let bytes):
                        if !chunk(bytes) {
                            socket.shutDown()
                            return status
                        }
                    case .end: return status
                    }
                }
                return status
            } onCancel: {
                socket.shutDown()
            }
        } catch {
            throw unreachable("\(error)")
        }
    }
}

/// The socket of one exchange. The reader thread closes it when it stops
/// reading; the caller may only shut it down, and only while it is open:
/// once closed, its number may be another socket's (the next exchange's),
/// which a late `shutdown` or `read` would hit.
private final class OwnedSocket: Sendable {
    let fd: Int32
    private let open = Mutex(true)

    init(_ fd: Int32) { self.fd = fd }

    func shutDown() {
        open.withLock { if $0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) } }
    }

    func close() {
        open.withLock {
            if $0 { _ = Glibc.close(fd) }
            $0 = false
        }
    }
}
