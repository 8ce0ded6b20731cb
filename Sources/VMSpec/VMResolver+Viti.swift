import MachineCatalog
import ResourceKit
import YAMLTree

/// A Viti Machine: its class (built-in or a MachineClass) under its own
/// overrides, its disks as named volumes, and its SSH keys and user data as
/// one NoCloud seed.
extension VMResolver {
    public func resolve(_ m: VitiMachine, _ context: DecodeContext) -> VMDefinition? {
        let errors = context.diagnostics.filter { $0.severity == .error }.count
        let className = m.classKey.name
        guard let cls = classes[className] else {
            let known = classes.keys.sorted()
            var message = "unknown MachineClass \"\(className)\"; "
            if let n = Suggestion.nearest(className, in: known) { message += "did you mean \"\(n)\"? " }
            context.error(at: m.className?.location, m.className?.path ?? "spec.machineClass", message + "known: " + known.joined(separator: ", "))
            return nil
        }
        let memory = m.memoryBytes ?? Located(cls.memoryBytes, at: m.metadata.location, path: "spec.memory")
        checkMemory(memory, context)
        if let given = m.memoryBytes {
            if let low = cls.minMemoryBytes, given.value < low {
                context.error(at: given.location, given.path, "\(Quantity.format(given.value)) is below MachineClass \"\(className)\"'s minQuantity \(Quantity.format(low))")
            }
            if let high = cls.maxMemoryBytes, given.value > high {
                context.error(at: given.location, given.path, "\(Quantity.format(given.value)) is above MachineClass \"\(className)\"'s maxQuantity \(Quantity.format(high))")
            }
        }
        let arch = m.architecture ?? .amd64
        let machineType = checkMachineType(m.machineType, arch, context)
        var disks: [VMDisk] = []
        if let image = m.image {
            disks.append(VMDisk(name: "os", bootOrder: 1, source: .image(reference: image, path: nil), location: m.metadata.location))
        }
        for d in m.disks {
            if d.name == "os" && m.image != nil {
                context.error(at: d.location, d.path + ".name", "\"os\" is the disk made from spec.os's image; name this one differently")
            }
            if d.name == "cloudinit" {
                context.error(at: d.location, d.path + ".name", "\"cloudinit\" is the disk made from sshKeys and userData; name this one differently")
            }
            if d.boot && m.image != nil {
                context.error(at: d.location, d.path + ".boot", "spec.os's image is the boot disk; a second one cannot boot first")
            }
            let volume = "\(m.metadata.name)-\(d.name)"
            if !Names.isDNSLabel(volume) {
                context.error(at: d.location, d.path + ".name", "the volume name \"\(volume)\" (<machine>-<disk>) is longer than 63 characters")
            }
            disks.append(VMDisk(name: d.name, bootOrder: d.boot ? 1 : nil,
                                source: .volume(name: volume, capacityBytes: d.sizeBytes, storageClass: d.storageClass), location: d.location,
                                owner: .machine))
        }
        if let userData = vitiUserData(m, context) {
            disks.append(VMDisk(name: "cloudinit", source: .cloudInit(CloudInit(flavor: .noCloud, userData: userData)), location: m.metadata.location))
        }
        guard context.diagnostics.filter({ $0.severity == .error }).count == errors, let machineType else { return nil }
        let cpu = CPUTopology(sockets: m.sockets ?? cls.sockets, cores: m.cores ?? cls.cores, threads: m.threads ?? cls.threads)
        var d = VMDefinition(metadata: m.metadata, api: .vitiMachine, runStrategy: .Always, architecture: arch, machineType: machineType,
                             cpu: cpu, memoryBytes: memory.value, firmware: arch == .arm64 ? .efi(secureBoot: false) : .bios, disks: disks,
                             interfaces: [VMInterface(name: "default")], hostname: m.vmName ?? m.metadata.name)
        d.memoryLocation = memory.location
        d.memoryField = memory.path
        return d
    }

    /// The user data of a Machine's NoCloud seed (README "Viti cloud-init"):
    /// `userData` alone goes in unchanged; otherwise one `#cloud-config`
    /// document holds `ssh_authorized_keys` from `sshKeys`, then the keys of
    /// `cloudInit` (a cloud-config), then `userData` (a cloud-config's keys,
    /// or a `#!` script run by `runcmd`). A key set twice is an error.
    func vitiUserData(_ m: VitiMachine, _ context: DecodeContext) -> String? {
        if m.sshKeys.isEmpty && m.cloudInit == nil { return m.userData?.value }
        var out = "#cloud-config\n"
        var owner: [String: String] = [:]
        func claim(_ key: String, _ by: String, _ at: Located<String>?) {
            if let first = owner[key] {
                context.error(at: at?.location, at?.path ?? "spec." + by, "\(by) sets \(key), which \(first) sets too; set it in one place")
            }
            owner[key] = by
        }
        if !m.sshKeys.isEmpty {
            owner["ssh_authorized_keys"] = "sshKeys"
            out += "ssh_authorized_keys:\n"
            for k in m.sshKeys {
                if k.contains(where: { $0.isNewline }) {
                    context.error(at: m.metadata.location, "spec.sshKeys", "an SSH key is one line")
                    continue
                }
                out += "  - \"" + k.flatMap { $0 == "\\" || $0 == "\"" ? ["\\", $0] : [$0] } + "\"\n"
            }
        }
        for (text, field) in [(m.cloudInit, "cloudInit"), (m.userData, "userData")] {
            guard let text else { continue }
            let body = text.value
            var lines = body.split(separator: "\n", omittingEmptySubsequences: false)
            while lines.last?.isEmpty == true { lines.removeLast() }
            if body.hasPrefix("#!") && field == "userData" {
                claim("runcmd", field, text)
                out += "runcmd:\n  - - /bin/sh\n    - -c\n    - |\n"
                for line in lines { out += line.isEmpty ? "\n" : "      " + line + "\n" }
                continue
            }
            if body.hasPrefix("#") && !body.hasPrefix("#cloud-config") {
                context.error(at: text.location, text.path, "\(field) must be a #cloud-config document" + (field == "userData" ? " or a #! script" : "") + " to be merged with sshKeys")
                continue
            }
            let docs: [YAMLDocument]
            do { docs = try YAMLParser.parse(Array(body.utf8), file: "\(text.location?.file ?? "") \(text.path)") } catch {
                context.error(at: text.location, text.path, "not valid cloud-config YAML: \(error.message) (at \(error.location))")
                continue
            }
            guard docs.count <= 1 else {
                context.error(at: text.location, text.path, "a cloud-config is one YAML document")
                continue
            }
            if let root = docs.first?.root, !root.isNull {
                guard case .mapping(let pairs) = root.content else {
                    context.error(at: text.location, text.path, "a cloud-config is a mapping of keys, got a \(root.kindName)")
                    continue
                }
                for p in pairs { if let k = p.key.scalar { claim(k, field, text) } }
            }
            for line in lines.drop(while: { $0.hasPrefix("#cloud-config") }) {
                out += line + "\n"
            }
        }
        return out
    }
}
