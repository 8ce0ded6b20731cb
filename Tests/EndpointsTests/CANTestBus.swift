#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import NIOPosix
@testable import Endpoints

/// A CAN bus hub on a unix socket in a private directory, and members
/// joined to it over that socket: what the CAN link tests set up alike.
struct CANTestBus {
    let name: String
    let dir: String
    let group: MultiThreadedEventLoopGroup
    let loop: any EventLoop
    let hub: CANBusHub
    var socket: String { dir + "/bus.sock" }

    static func start(_ name: String) async throws -> CANTestBus {
        let dir = "/tmp/vt-canbus-\(name)-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(dir, 0o700)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let hub = CANBusHub(name: name, loop: loop, logPath: nil)
        _ = try await hub.listen(tcpPort: 0, unixPath: dir + "/bus.sock")
        return CANTestBus(name: name, dir: dir, group: group, loop: loop, hub: hub)
    }

    func join(_ member: String, onLost: @escaping @Sendable (String) -> Void = { _ in }) async throws -> CANBusLink {
        let socket = self.socket
        return try await CANBusLink.join(socketPath: socket, bus: name, member: member, faults: [:], loop: loop,
                                         onLost: onLost, rediscover: { socket })
    }

    /// Closes the hub and the loop, and removes the directory.
    func stop() async throws {
        await hub.close()
        try await group.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// Reads from `fd` until `want` has come, or `seconds` passed.
func readText(_ fd: Int32, until want: String, seconds: Double = 10) -> String {
    var got = ""
    let end = Date().addingTimeInterval(seconds)
    while !got.contains(want), Date() < end {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 100) > 0 else { continue }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = Glibc.read(fd, &buf, buf.count)
        if n <= 0 { break }
        got += String(decoding: buf[..<n], as: UTF8.self)
    }
    return got
}
