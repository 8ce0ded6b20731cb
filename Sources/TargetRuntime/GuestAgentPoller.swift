// Foundation, not FoundationEssentials: a round runs on a `Thread` of its own.
import Foundation
import HostOS
import InstanceContract
import QMP

/// Asks each VM's guest agent, at boot and every `interval` seconds, what
/// the guest is (hostname, OS) and which addresses it has, into the shim's
/// status (written only when the answer changed). A session is a short
/// connect-ask-close on a thread of its own, so `vtarget guestosinfo` and
/// `soft-reboot` find the agent's one socket free between rounds.
enum GuestAgentPoller {
    static let interval = 10.0

    /// One round; nil answers mean the agent is not there (yet).
    static func ask(_ socket: String) async -> (hostname: String?, osName: String?, interfaces: [GuestInterface])? {
        await withCheckedContinuation { done in
            Thread.detachNewThread { done.resume(returning: askBlocking(socket)) }
        }
    }

    private static func askBlocking(_ socket: String) -> (hostname: String?, osName: String?, interfaces: [GuestInterface])? {
        guard let agent = try? GuestAgent(path: socket, timeout: 2) else { return nil }
        defer { agent.close() }
        guard let list = try? agent.execute("guest-network-get-interfaces", timeout: 5) else { return nil }
        let host = (try? agent.execute("guest-get-host-name", timeout: 5))?["host-name"]?.stringValue
        let os = (try? agent.execute("guest-get-osinfo", timeout: 5))?["pretty-name"]?.stringValue
        return (host, os, interfaces(list))
    }

    /// `guest-network-get-interfaces` as status: loopback left out, as KubeVirt does.
    static func interfaces(_ list: JSONValue) -> [GuestInterface] {
        guard case .array(let items) = list else { return [] }
        return items.compactMap { i in
            guard let name = i["name"]?.stringValue, name != "lo" else { return nil }
            var ips: [String] = []
            if case .array(let addresses)? = i["ip-addresses"] {
                ips = addresses.compactMap { $0["ip-address"]?.stringValue }.filter { !$0.hasPrefix("fe80:") && $0 != "::1" && !$0.hasPrefix("127.") }
            }
            return GuestInterface(name: name, mac: i["hardware-address"]?.stringValue, ipAddresses: ips)
        }
    }
}

extension RunSession.Live {
    /// The poller of every VM target of this run (boards have no agent);
    /// cancelled with the run.
    func watchGuestAgents() -> Task<Void, Never> {
        let sockets = targets.compactMap { t -> String? in
            let path = t.plan.workingDirectory + "/qga.sock"
            return !t.plan.workingDirectory.isEmpty && FileManager.default.fileExists(atPath: path) ? path : nil
        }
        let status = self.status
        let loop = group.next()
        return Task {
            guard let socket = sockets.first, let status else { return }
            var last: GuestAgentStatus?
            while !Task.isCancelled {
                let answer = await GuestAgentPoller.ask(socket)
                let connected = answer != nil
                var next = GuestAgentStatus(connected: connected, since: last?.connected == connected ? last!.since : ShimStatus.now,
                                            hostname: answer?.hostname, osName: answer?.osName, interfaces: answer?.interfaces ?? [])
                if !connected, let last {
                    // Gone quiet: the last known interfaces stay, as KubeVirt keeps them.
                    next.interfaces = last.interfaces
                }
                if next != last {
                    status.update { $0.guestAgent = next }
                    last = next
                }
                await LoopTimer.sleep(GuestAgentPoller.interval, on: loop)
            }
        }
    }
}
