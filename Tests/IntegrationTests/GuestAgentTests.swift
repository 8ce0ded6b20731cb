import Foundation
import HostOS
import QMP
import Testing
import TestSupport
@testable import TargetRuntime
@testable import VTargetCommands

/// The guest-agent client against the real qemu-guest-agent, run on the
/// host on a unix socket (`qemu-ga -m unix-listen`) as it runs in a guest on
/// its virtio-serial port; the power RPCs are blocked, as this is the host.
///
/// Two things of `unix-listen` that a VM's port does not share, and that
/// made this test fail before: its socket file appears at bind(), before
/// listen(), so a connect right then is refused (hence the wait for a
/// connection, not for the file); and a client that leaves with an answer
/// unread resets the connection, which qemu-ga takes for a broken channel
/// and exits (in a VM, QEMU's chardev is what the client leaves, and the
/// agent never sees it). The stale-client check therefore leaves half a
/// request, which is what the agent's parser keeps across clients. And the
/// agent is killed with SIGKILL (see `withAgent`).
@Suite(.serialized) struct GuestAgentTests {
    static let qemuGA = ["/usr/sbin/qemu-ga", "/usr/bin/qemu-ga"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// qemu-ga listening on a fresh socket for `body`, killed after it.
    func withAgent(_ body: (String) throws -> Void) throws {
        let dir = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/qga.sock"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.qemuGA!)
        p.arguments = ["-m", "unix-listen", "-p", socket, "-t", dir, "-f", dir + "/qemu-ga.pid",
                       "-b", "guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-time,guest-exec,guest-file-open"]
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // SIGKILL, not terminate(): Foundation's Process hands the child the
        // spawning thread's signal mask, in which SIGTERM is blocked under
        // the test runner, and qemu-ga never unblocks it (terminate() left
        // it running and waitUntilExit() hung: the hang seen under strace).
        defer {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        // Listening once a connection is taken; the probe leaves nothing behind.
        var listening = false
        for _ in 0..<500 where !listening {
            if let probe = try? FileDescriptors.connectUnix(socket) {
                close(probe)
                listening = true
            } else {
                usleep(20_000)
            }
        }
        try #require(listening, "qemu-ga did not listen on \(socket)")
        try body(socket)
        #expect(p.isRunning, "qemu-ga exited during the test")
    }

    @Test(.enabled(if: qemuGA != nil, "qemu-guest-agent is not installed (make setup)"))
    func syncsAsksAndReconnects() throws {
        try withAgent { socket in
            let agent = try GuestAgent(path: socket, timeout: 10)
            #expect(try agent.execute("guest-ping") == .object([:]))
            let os = try agent.execute("guest-get-osinfo")
            #expect(os["kernel-release"]?.stringValue?.isEmpty == false, "\(os)")
            let interfaces = try agent.execute("guest-network-get-interfaces")
            guard case .array(let list) = interfaces else { Issue.record("not a list: \(interfaces)"); return }
            #expect(list.contains { $0["name"]?.stringValue == "lo" }, "\(interfaces)")
            // An agent error is reported with its description.
            #expect(throws: RuntimeError.self) { try agent.execute("guest-no-such-command") }
            // The host's own loopback is left out of status, as KubeVirt leaves it.
            #expect(!GuestAgentPoller.interfaces(interfaces).contains { $0.name == "lo" })
            agent.close()
            // A client that went away in the middle of writing a request: the
            // agent's parser keeps that half, and the next session still syncs.
            for _ in 0..<2 {
                let fd = try FileDescriptors.connectUnix(socket)
                FileDescriptors.writeAll(fd, Array(#"{"execute":"guest-in"#.utf8))
                usleep(100_000)
                close(fd)
                let again = try GuestAgent(path: socket, timeout: 10)
                #expect(try again.execute("guest-ping") == .object([:]))
                let shaped = GuestOSInfo.kubeVirtShape(os: os, agentVersion: try again.execute("guest-info")["version"],
                                                       hostname: try again.execute("guest-get-host-name")["host-name"], timezone: nil)
                #expect(shaped["os"]?["kernelRelease"] == os["kernel-release"] && shaped["guestAgentVersion"]?.stringValue?.isEmpty == false, "\(shaped)")
                again.close()
            }
        }
    }

    @Test func noAgentIsNotConnected() throws {
        let dir = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Nothing listens.
        #expect(throws: RuntimeError.self) { try GuestAgent(path: dir + "/none.sock", timeout: 1) }
        // A socket that accepts and never answers (QEMU's, with no agent in the guest).
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array((dir + "/silent.sock").utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.enumerated() { raw[i] = b } }
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        listen(listener, 1)
        do {
            _ = try GuestAgent(path: dir + "/silent.sock", timeout: 1)
            Issue.record("a silent socket was taken for an agent")
        } catch {
            #expect(error.message.hasPrefix("guest agent not connected"), "\(error.message)")
        }
    }

    @Test func agentInterfacesBecomeStatus() throws {
        let list = try JSONValue.parse(Array(#"[{"name":"lo","ip-addresses":[{"ip-address":"127.0.0.1"}]},{"name":"eth0","hardware-address":"52:54:00:12:34:56","ip-addresses":[{"ip-address-type":"ipv4","ip-address":"10.0.2.15","prefix":24},{"ip-address-type":"ipv6","ip-address":"fe80::1","prefix":64},{"ip-address-type":"ipv6","ip-address":"fec0::5054:ff:fe12:3456","prefix":64}]},{"name":"eth1"}]"#.utf8))
        let out = GuestAgentPoller.interfaces(list)
        #expect(out.map(\.name) == ["eth0", "eth1"])
        #expect(out.first?.mac == "52:54:00:12:34:56" && out.first?.ipAddresses == ["10.0.2.15", "fec0::5054:ff:fe12:3456"])
        #expect(out.last?.ipAddresses == [])
        #expect(GuestAgentPoller.interfaces(.object([:])).isEmpty)
    }

    @Test func sshTargetsAndScpPaths() {
        #expect(GuestSSH.parseTarget("debian@vm1")! == ("debian", "vm1"))
        #expect(GuestSSH.parseTarget("vm/vm1")! == (nil, "vm1"))
        #expect(GuestSSH.parseTarget("u@vmi/vm-1")! == ("u", "vm-1"))
        for bad in ["", "@vm", "u@", "a/b", "u@vm:x"] { #expect(GuestSSH.parseTarget(bad) == nil, "\(bad)") }
        #expect(SCP.remote("debian@vm1:/etc/hostname")! == ("debian", "vm1", "/etc/hostname"))
        #expect(SCP.remote("vm/vm1:f")! == (nil, "vm1", "f"))
        for local in ["/tmp/a:b", "./x:y", "file.txt"] { #expect(SCP.remote(local) == nil, "\(local)") }
        let ssh = GuestSSH(name: "vm1", namespace: nil, identityFile: "/k", guestPort: 22, localOptions: ["-o", "StrictHostKeyChecking=yes"])
        let opts = ssh.sshOptions(port: 2222, portFlag: "-p")
        #expect(opts.starts(with: ["-p", "2222"]) && opts.contains("UserKnownHostsFile=/dev/null") && !opts.contains("StrictHostKeyChecking=no")
                && opts.suffix(4) == ["-i", "/k", "-o", "StrictHostKeyChecking=yes"], "\(opts)")
    }
}
