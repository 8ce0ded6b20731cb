import HostOS
import InstanceContract
import QEMULaunch

extension RunSession.Live {
    /// The environment of `run -- CMD` and of sidecars: every endpoint.
    func endpointEnvironment() -> [String: String] {
        config.environment.merging(endpointVariables()) { $1 }
    }

    /// The contract's endpoint variables alone (VTARGET_NAME, _SERIAL_*, _QMP, _CAN_*, ...).
    func endpointVariables() -> [String: String] {
        var env: [String: String] = [:]
        var buses: [String: BusRecord] = [:]
        for t in targets { for (name, r) in t.buses { buses[name] = r } }
        for (bus, r) in buses {
            env["VTARGET_CAN_\(EndpointEnvironment.key(bus))"] = "\(r.host ?? "127.0.0.1"):\(r.port)"
            if !r.socket.isEmpty { env["VTARGET_CAN_\(EndpointEnvironment.key(bus))_SOCKET"] = r.socket }
        }
        for (k, v) in EndpointEnvironment.variables(targets.map { ($0.name, $0.plan, $0.directory, $0.rfc2217Ports) }) { env[k] = v }
        return env
    }
}

/// The endpoint variables of the contract, for sidecars and `run -- CMD`.
public enum EndpointEnvironment {
    public static func key(_ s: String) -> String {
        String(s.uppercased().map { $0 == "-" || $0 == "." ? "_" : $0 })
    }

    public static func variables(_ targets: [(name: String, plan: LaunchPlan, directory: String, rfc2217: [String: Int])]) -> [String: String] {
        var env: [String: String] = [:]
        for t in targets {
            var own: [String: String] = [:]
            for c in t.plan.channels where c.role != .qmp {
                own["SERIAL_\(key(c.device))"] = InstanceLayout(directory: t.directory).serialSocket(c.device)
            }
            for (device, port) in t.rfc2217 { own["SERIAL_\(key(device))_RFC2217"] = "127.0.0.1:\(port)" }
            if let gdb = t.plan.gdbSocketPath { own["GDB"] = gdb }
            for (port, host) in t.plan.forwardedPorts { own["PORT_\(key(port.replacingOccurrences(of: "/", with: "_")))"] = "127.0.0.1:\(host)" }
            own["QMP"] = InstanceLayout(directory: t.directory).qmpSocket
            for (k, v) in own {
                if targets.count == 1 { env["VTARGET_" + k] = v }
                env["VTARGET_\(key(t.name))_" + k] = v
            }
        }
        env["VTARGET_NAME"] = targets.map(\.name).joined(separator: ",")
        return env
    }
}
