import QEMULaunch
import VMSpec
import YAMLTree

extension VMPlanBuilder {
    /// QEMU's NIC models by KubeVirt's interface `model`.
    static let nicModels: [String: String] = [
        "virtio": "virtio-net-pci", "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139", "ne2k_pci": "ne2k_pci", "pcnet": "pcnet",
    ]

    /// The pod network, masquerade or bridge alike: QEMU's user-mode NAT on
    /// KubeVirt's masquerade subnet, with DHCP (handing out the hostname) and
    /// DNS, and each port forwarded from 127.0.0.1 on the host port the
    /// runtime chose. Named networks come with section 7.
    mutating func planInterfaces() {
        for iface in vm.interfaces {
            let field = "domain.devices.interfaces[\(iface.name)]"
            if let network = iface.network {
                fail("networks[\(network)]", "interface \"\(iface.name)\" is on network \"\(network)\": named networks are not supported yet; "
                     + "only the pod network (masquerade or bridge) is")
                continue
            }
            var ok = true
            let model = Self.nicModels[iface.model]
            if model == nil {
                fail(field + ".model", "unknown model \"\(iface.model)\"; " + Suggestion.hint(iface.model, in: Self.nicModels.keys.sorted()))
                ok = false
            }
            var mac = MACAddress.derived(namespace: vm.metadata.namespace, vm: vm.metadata.name, interface: iface.name)
            if let text = iface.macAddress {
                if let given = MACAddress(text), !given.isMulticast {
                    mac = given
                } else {
                    fail(field + ".macAddress", MACAddress(text) == nil
                         ? "\"\(text)\" is not a MAC address; write six hex pairs, e.g. 02:00:00:00:00:01"
                         : "\(text) is a multicast (group) address; a NIC needs a unicast one (even first byte), e.g. 02:00:00:00:00:01")
                    ok = false
                }
            }
            var netdev = [("id", netNames.claim("net", iface.name)), ("net", "10.0.2.0/24")]
            if !vm.hostname.isEmpty { netdev.append(("hostname", vm.hostname)) }
            var seen: Set<String> = []
            for (i, port) in iface.ports.enumerated() {
                guard (1...65535).contains(port.port) else {
                    fail(field + ".ports[\(i)].port", "port \(port.port) is not between 1 and 65535")
                    ok = false
                    continue
                }
                guard seen.insert("\(port.transport.rawValue) \(port.port)").inserted else {
                    fail(field + ".ports[\(i)].port", "\(port.transport.rawValue) port \(port.port) is listed twice; list each port once")
                    ok = false
                    continue
                }
                guard let forwarded = host.forwardedPorts.first(where: {
                    $0.interface == iface.name && $0.transport == port.transport && $0.guestPort == port.port
                }) else {
                    lack(field + ".ports[\(i)]", "no host port was chosen for \(port.transport.rawValue) \(port.port)")
                    continue
                }
                let proto = port.transport == .TCP ? "tcp" : "udp"
                netdev.append(("hostfwd", "\(proto):127.0.0.1:\(forwarded.hostPort)-:\(port.port)"))
            }
            guard ok, let model else { continue }
            args += ["-netdev", QEMUOption("user", netdev).description]
            args += ["-device", QEMUJSON.argument(QEMUProperties([
                ("driver", .string(model)), ("id", .string(netNames.claim("nic", iface.name))), ("netdev", .string(netdev[0].1)),
                ("mac", .string(mac.description)),
            ]))]
        }
    }
}
