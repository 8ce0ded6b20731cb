#if canImport(Glibc)
import Glibc
#endif
import HostOS
import NIOCore
import NIOPosix
import QMP
import Sandbox

extension QMPClient {
    /// A client on a QMP socket (an instance's proxy), handshake done, for
    /// one-shot CLI verbs. The caller closes it.
    public static func connect(path: String, timeout: Double = 10,
                               group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws(RuntimeError) -> QMPClient {
        let fd = try FileDescriptors.connectUnix(path)
        let (handler, core, events) = makeHandler()
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler) } }
                .withConnectedSocket(fd).get()
        } catch {
            Glibc.close(fd)
            throw RuntimeError("cannot connect to \(path): \(error)", cause: error)
        }
        let answer = await withDeadline(timeout) { () -> Result<QMPClient, QMPError> in
            do throws(QMPError) { return .success(try await handshake(on: channel, core: core, events: events)) } catch { return .failure(error) }
        }
        switch answer {
        case .success(let client)?: return client
        case .failure(let e)?:
            channel.close(promise: nil)
            throw Self.runtimeError(e)
        case nil:
            channel.close(promise: nil)
            throw RuntimeError("QMP: no answer within \(Int(timeout))s", code: .timeout)
        }
    }

    /// One command and its `return` value, within `timeout`; errors as the CLI words them.
    public func execute(_ command: String, arguments: JSONValue? = nil, timeout: Double) async throws(RuntimeError) -> JSONValue {
        let answer = await withDeadline(timeout) { () -> Result<JSONValue, QMPError> in
            do throws(QMPError) { return .success(try await self.execute(command, arguments: arguments)) } catch { return .failure(error) }
        }
        switch answer {
        case .success(let v)?: return v
        case .failure(let e)?: throw Self.runtimeError(e)
        case nil: throw RuntimeError("QMP: no answer within \(Int(timeout))s", code: .timeout)
        }
    }

    /// The first event called `name` from now on (events since the handshake
    /// are kept, so one that already came counts); nil after `timeout`.
    public func waitForEvent(_ name: String, timeout: Double) async -> JSONValue? {
        let events = self.events
        return await withDeadline(timeout) { () -> JSONValue? in
            for await e in events where e["event"]?.stringValue == name { return e }
            return nil
        } ?? nil
    }

    private static func runtimeError(_ e: QMPError) -> RuntimeError {
        switch e {
        case .command: return RuntimeError(e.description, code: .qmp, cause: e)
        case .disconnected: return RuntimeError("QMP connection closed (the instance stopped?)", code: .qmp, cause: e)
        case .protocolViolation: return RuntimeError("QMP: malformed input from the proxy", code: .qmp, cause: e)
        }
    }
}
