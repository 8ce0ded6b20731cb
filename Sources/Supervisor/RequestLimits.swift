import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// What one request to the control socket may be. A head (request line and
/// headers) over `maxHead` is answered 431, a declared body over `maxBody`
/// 413, both at once and before anything is buffered; a head that does not
/// complete within `headTimeout` is answered 408. Then the connection closes.
public struct RequestLimits: Sendable {
    public var maxHead = 64 << 10
    /// A ConfigMap with a firmware image of a few MiB fits with room to spare;
    /// disk images never travel through the API.
    public var maxBody = 16 << 20
    public var headTimeout: TimeAmount = .seconds(10)
    /// A connection with no request in flight for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(60)

    public init() {}
}

/// Hummingbird's HTTP/1 channel with `RequestLimitHandler` in front of the
/// HTTP decoder, which on its own waits forever for the end of a 1 MB request
/// line and answers nothing to a header it refuses.
struct LimitedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel
    let limits: RequestLimits

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do { try channel.pipeline.syncOperations.addHandler(RequestLimitHandler(limits: limits)) } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }

    static func builder(_ limits: RequestLimits) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            LimitedHTTP1Channel(inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: limits.idleTimeout)), limits: limits)
        }
    }
}

/// Reads the raw bytes ahead of the HTTP decoder and passes them on
/// unchanged, counting: the head of each request (up to its blank line), then
/// its Content-Length of body. A chunked body is left to the route's own
/// bound (`collect(upTo:)`), and the rest of that connection is passed through.
final class RequestLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum State { case head, body(remaining: Int), passThrough, refused }

    let limits: RequestLimits
    private var state = State.head
    private var head: [UInt8] = []
    private var headTimer: Scheduled<Void>?

    init(limits: RequestLimits) { self.limits = limits }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        while buffer.readableBytes > 0 {
            switch state {
            case .refused:
                return
            case .passThrough:
                context.fireChannelRead(wrapInboundOut(buffer))
                return
            case .body(let remaining):
                let n = min(remaining, buffer.readableBytes)
                let part = buffer.readSlice(length: n)!
                context.fireChannelRead(wrapInboundOut(part))
                state = remaining - n == 0 ? .head : .body(remaining: remaining - n)
            case .head:
                if head.isEmpty { armHeadTimer(context) }
                let bytes = buffer.readableBytesView
                // The blank line may straddle two reads: search from just before the new bytes.
                let before = head.count
                head.append(contentsOf: bytes)
                let from = max(0, before - 3)
                guard let end = Self.blankLine(in: head, from: from) else {
                    if head.count > limits.maxHead { return refuse(context, 431, "Request Header Fields Too Large",
                                                                   "the request line and headers exceed \(limits.maxHead) bytes") }
                    buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                    continue
                }
                if end > limits.maxHead {
                    return refuse(context, 431, "Request Header Fields Too Large", "the request line and headers exceed \(limits.maxHead) bytes")
                }
                let used = end - before
                buffer.moveReaderIndex(forwardBy: used)
                let headBytes = Array(head[..<end])
                head = []
                headTimer?.cancel()
                headTimer = nil
                let (length, chunked) = Self.bodyFraming(headBytes)
                if let length, length > limits.maxBody {
                    return refuse(context, 413, "Content Too Large", "the body of \(length) bytes exceeds \(limits.maxBody) bytes")
                }
                context.fireChannelRead(wrapInboundOut(context.channel.allocator.buffer(bytes: headBytes)))
                if chunked { state = .passThrough } else if let length, length > 0 { state = .body(remaining: length) } else { state = .head }
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headTimer?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        headTimer?.cancel()
        context.fireChannelInactive()
    }

    private func armHeadTimer(_ context: ChannelHandlerContext) {
        headTimer?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        headTimer = context.eventLoop.scheduleTask(in: limits.headTimeout) {
            let (handler, context) = loopBound.value
            if case .head = handler.state, !handler.head.isEmpty {
                handler.refuse(context, 408, "Request Timeout", "the request's head did not arrive within the time allowed")
            }
        }
    }

    /// Answers in plain HTTP/1.1 (the decoder behind never saw this request)
    /// with the API's `{"code","message"}` body, and closes.
    private func refuse(_ context: ChannelHandlerContext, _ code: Int, _ reason: String, _ message: String) {
        state = .refused
        head = []
        headTimer?.cancel()
        headTimer = nil
        let body = #"{"code":\#(code),"message":"\#(message)"}"#
        let text = "HTTP/1.1 \(code) \(reason)\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n" + body
        // A lingering close, as web servers do: what the client still sends is
        // read and dropped for a moment, so it finishes writing and reads the
        // answer instead of a reset.
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutbound(context, text)).whenComplete { _ in
            loopBound.value.eventLoop.scheduleTask(in: .seconds(1)) { loopBound.value.close(promise: nil) }
        }
    }

    private func wrapOutbound(_ context: ChannelHandlerContext, _ text: String) -> NIOAny {
        NIOAny(context.channel.allocator.buffer(string: text))
    }

    /// The index just past the first CRLF CRLF at or after `from`.
    static func blankLine(in bytes: [UInt8], from: Int) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var i = max(0, from)
        while i + 3 < bytes.count {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i + 4 }
            i += 1
        }
        return nil
    }

    /// Content-Length and whether the body is chunked, from a raw head.
    static func bodyFraming(_ head: [UInt8]) -> (length: Int?, chunked: Bool) {
        var length: Int?
        var chunked = false
        for line in String(decoding: head, as: UTF8.self).split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "content-length" { length = Int(value) ?? Int.max }
            if name == "transfer-encoding", value.lowercased().contains("chunked") { chunked = true }
        }
        return (length, chunked)
    }
}

/// Every error the router itself answers (an unknown path, a wrong method,
/// a body over the route's bound) carries the API's `{"code","message"}`
/// body like the supervisor's own errors, not an empty one.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let code = Int(error.status.code)
            let message = error.body ?? (code == 404 ? "no such API path: \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            return errorResponse(code, message)
        }
    }
}
