#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOHTTP1
import NIOPosix

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
    private func exchange(_ method: HTTPMethod, _ path: String, body: [UInt8]?,
                          chunk: @escaping ([UInt8]) -> Bool) async throws(ControlError) -> Int {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(unixDomainSocketPath: socketPath) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
                head.headers.add(name: "Host", value: "vtarget")
                head.headers.add(name: "Connection", value: "close")
                head.headers.add(name: "Content-Length", value: "\(body?.count ?? 0)")
                if body != nil { head.headers.add(name: "Content-Type", value: "application/json") }
                // One write: the server may answer and close as soon as it has
                // the head, and a second write would then fail on a closed channel.
                var parts: [HTTPClientRequestPart] = [.head(head)]
                if let body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                parts.append(.end(nil))
                try await outbound.write(contentsOf: parts)
                var status = 0
                for try await part in inbound {
                    switch part {
                    case .head(let h): status = Int(h.status.code)
                    case .body(let buffer):
                        if !chunk(Array(buffer.readableBytesView)) { return status }
                    case .end: return status
                    }
                }
                return status
            }
        } catch let e as ControlError {
            throw e
        } catch {
            throw ControlError(status: nil, message: "cannot reach the supervisor at \(socketPath): \(error)")
        }
    }
}
