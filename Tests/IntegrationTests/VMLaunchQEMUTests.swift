import DiskImages
import Foundation
import HostOS
import NIOPosix
import QEMULaunch
import QMP
import Sandbox
import Synchronization
import Testing
import VMLaunch
import VMLaunchCases
import VMRuntime
@testable import TargetRuntime

/// Every golden VM plan started in a real QEMU (paused at -S) the way the
/// runtime starts a board: TargetProcess, its sandbox, the console hub and
/// the QMP handshake. Its backing files are made for real (qemu-img overlays
/// on a base image, ISOs from genisoimage), its firmware found through QEMU's
/// descriptors. QMP then shows the node names, the PCI devices, the agent's
/// and VNC's sockets and the forwarded ports the plan promised.
@Suite(.serialized) struct VMLaunchQEMUTests {
    @Test(arguments: VMLaunchCases.all)
    func planStartsInARealQEMU(_ original: VMLaunchCase) async throws {
        let env = ProcessInfo.processInfo.environment
        var c = original
        // Ports of our own, free now, instead of the goldens' fixed ones.
        c.ports = c.ports.map { var p = $0; p.hostPort = Self.freePort(); return p }
        let runtime = makeRuntimeDir()
        chmod(runtime, 0o711)
        defer { RuntimeDirectory.removeTree(runtime) }
        let instance = runtime + "/vm", qemuDir = instance + "/qemu"
        mkdir(instance, isRoot ? 0o711 : 0o700)
        mkdir(qemuDir, 0o700)
        try await Self.makeFiles(for: c, in: qemuDir, environment: env)
        try QEMUSandbox.handOver(qemuDir)

        let plan = try VMLaunchPlanner.plan(vm: c.vm, host: c.host(directory: qemuDir))
        let qemu = try #require(ExecutableSearch.find(plan.binary, environment: env))
        var sandbox = try await QEMUSandbox.policy(enabled: true, qemuDirectory: qemuDir)
        if !c.ports.isEmpty {
            // hostfwd listens on the host's 127.0.0.1: TCP/UDP sockets and the host's network namespace.
            sandbox.network = true
            sandbox.namespaces = false
            sandbox.userNamespace = false
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let target = try await TargetProcess.spawn(plan: plan, directory: instance, qemuPath: qemu, sandbox: sandbox)
        do {
            try await target.connect(group: group, startRunning: false, environment: env) { _, _ in }
            let qmp = try #require(target.qmp)

            // Every node the plan names, with the read-only flag it asked for.
            let nodes = try await qmp.execute("query-named-block-nodes", arguments: .object(["flat": .bool(true)]))
            var readOnly: [String: Bool] = [:]
            if case .array(let list) = nodes {
                for n in list { if let name = n["node-name"]?.stringValue, case .bool(let ro)? = n["ro"] { readOnly[name] = ro } }
            }
            var expected: [String: Bool] = [:]
            for d in plan.blockDrives { expected[d.fileNode] = d.readOnly; expected[d.formatNode] = d.readOnly }
            #expect(readOnly.filter { expected[$0.key] != nil } == expected)
            #expect(Set(readOnly.keys).isSuperset(of: expected.keys), "missing: \(Set(expected.keys).subtracting(readOnly.keys))")

            // Each disk's device is attached to its format node.
            let block = try await qmp.execute("query-block")
            var attached: [String: String] = [:]
            if case .array(let list) = block {
                for b in list {
                    if let qdev = b["qdev"]?.stringValue, let node = b["inserted"]?["node-name"]?.stringValue { attached[qdev] = node }
                }
            }
            for d in plan.blockDrives where d.deviceID != nil {
                let hit = attached.first { $0.key == d.deviceID || $0.key.hasPrefix("/machine/peripheral/\(d.deviceID!)/") }
                #expect(hit?.value == d.formatNode, "\(d.name): \(attached)")
            }
            if c.vm.firmware != .bios {
                // pflash0/1 are the machine's: their backends show the EFI nodes.
                #expect(Set(attached.values).isSuperset(of: ["fmt-vt.efi-code", "fmt-vt.efi-vars"]), "\(attached)")
            }

            // Every PCI device the plan added, by id.
            let pciIDs = Self.pciDeviceIDs(try await qmp.execute("query-pci"))
            let wanted = Self.plannedPCIDeviceIDs(plan.arguments)
            #expect(!wanted.isEmpty)
            #expect(pciIDs.isSuperset(of: wanted), "missing on PCI: \(wanted.subtracting(pciIDs))")

            // The agent's socket, VNC's, the console's endpoint, the forwarded ports.
            let host = c.host(directory: qemuDir)
            let chardevs = try await qmp.execute("query-chardev")
            // QEMU names its own files relative to its directory.
            #expect("\(chardevs)".contains(LaunchPlan.relative(host.guestAgentSocket, to: qemuDir)))
            #expect(access(host.guestAgentSocket, F_OK) == 0)
            if c.vm.graphics {
                let vnc = try await qmp.execute("query-vnc")
                #expect(vnc["service"]?.stringValue == LaunchPlan.relative(host.vncSocket, to: qemuDir), "\(vnc)")
            } else {
                #expect(!plan.arguments.contains("-vnc"))
            }
            #expect(access(target.layout.serialSocket("console"), F_OK) == (c.vm.serialConsole ? 0 : -1))
            for p in c.ports where p.transport == .TCP {
                #expect(Self.canConnect(port: p.hostPort), "hostfwd to guest port \(p.guestPort) listens on 127.0.0.1:\(p.hostPort)")
            }
            // A pool member's plan can be snapshotted: its seed is read-only, its other nodes qcow2.
            if c.snapshotImage != nil { #expect(try await qmp.hmp("savevm vt-ready") == "") }
        } catch {
            Issue.record("\(c.name): \(error)\n\(target.stderrText)")
        }
        let status = await target.stop()
        #expect(status == .exited(0), "\(c.name): \(target.stderrText)")
        try await group.shutdownGracefully()
    }

    /// The console is a board UART: the firmware's first words (OVMF's and
    /// AAVMF's boot manager) reach vtarget through the FIFOs and the hub,
    /// the per-VM vars are written, on x86 and on arm64 alike.
    @Test(arguments: ["q35-efi", "virt-arm64-efi"])
    func firmwareTalksOnTheConsole(_ name: String) async throws {
        let env = ProcessInfo.processInfo.environment
        var c = VMLaunchCases.all.first { $0.name == name }!
        c.ports = []
        c.vm.interfaces = c.vm.interfaces.map { var i = $0; i.ports = []; return i }
        let runtime = makeRuntimeDir()
        chmod(runtime, 0o711)
        defer { RuntimeDirectory.removeTree(runtime) }
        let instance = runtime + "/vm", qemuDir = instance + "/qemu"
        mkdir(instance, isRoot ? 0o711 : 0o700)
        mkdir(qemuDir, 0o700)
        try await Self.makeFiles(for: c, in: qemuDir, environment: env)
        try QEMUSandbox.handOver(qemuDir)
        let plan = try VMLaunchPlanner.plan(vm: c.vm, host: c.host(directory: qemuDir))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let output = Mutex<[UInt8]>([])
        let target = try await TargetProcess.spawn(plan: plan, directory: instance, qemuPath: try #require(ExecutableSearch.find(plan.binary, environment: env)),
                                                   sandbox: try await QEMUSandbox.policy(enabled: true, qemuDirectory: qemuDir))
        do {
            try await target.connect(group: group, startRunning: true, environment: env) { device, bytes in
                if device == VMLaunchPlanner.consoleDevice { output.withLock { $0 += bytes } }
            }
            let start = ContinuousClock.now
            var text = ""
            while ContinuousClock.now - start < .seconds(180) {
                text = String(decoding: output.withLock { $0 }, as: UTF8.self)
                if text.contains("BdsDxe") || target.child.exitStatus != nil { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(text.contains("BdsDxe"), "\(name): \(text.suffix(500))\n\(target.stderrText)")
            print("\(name): firmware on the console after \(ContinuousClock.now - start)")
        } catch {
            Issue.record("\(name): \(error)\n\(target.stderrText)")
        }
        _ = await target.stop()
        try await group.shutdownGracefully()
    }

    /// `savevm` (warm pools, memory snapshots) refuses a writable raw node:
    /// with the EFI vars in qcow2 a UEFI VM can be snapshotted, and restored.
    @Test func efiVarsInQcow2LetSavevmWork() async throws {
        let env = ProcessInfo.processInfo.environment
        let c = VMLaunchCases.all.first { $0.name == "q35-efi" }!
        let runtime = makeRuntimeDir()
        chmod(runtime, 0o711)
        defer { RuntimeDirectory.removeTree(runtime) }
        let instance = runtime + "/vm", qemuDir = instance + "/qemu"
        mkdir(instance, isRoot ? 0o711 : 0o700)
        mkdir(qemuDir, 0o700)
        try await Self.makeFiles(for: c, in: qemuDir, environment: env)
        // The vars as the template ships them (raw), beside the qcow2 vtarget makes.
        let fw = try FirmwareFiles.find(architecture: c.vm.architecture, machineType: c.vm.machineType,
                                        directories: FirmwareFiles.defaultDirectories(environment: env))
        try FileManager.default.copyItem(atPath: fw.varsTemplate, toPath: qemuDir + "/efi-vars.fd")
        chmod(qemuDir + "/efi-vars.fd", 0o600)
        try QEMUSandbox.handOver(qemuDir)

        for format in [VMHostInputs.DiskFormat.raw, .qcow2] {
            var host = c.host(directory: qemuDir)
            if format == .raw { host.efi?.vars = qemuDir + "/efi-vars.fd" }
            host.efi?.varsFormat = format
            let plan = try VMLaunchPlanner.plan(vm: c.vm, host: host)
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let target = try await TargetProcess.spawn(plan: plan, directory: instance, qemuPath: try #require(ExecutableSearch.find(plan.binary, environment: env)),
                                                       sandbox: try await QEMUSandbox.policy(enabled: true, qemuDirectory: qemuDir))
            do {
                try await target.connect(group: group, startRunning: false, environment: env) { _, _ in }
                let qmp = try #require(target.qmp)
                let saved = try await qmp.hmp("savevm vt-ready")
                if format == .raw {
                    #expect(saved.contains("fmt-vt.efi-vars") && saved.contains("does not support snapshots"), "\(saved)")
                } else {
                    #expect(saved == "", "\(saved)")
                    #expect(try await qmp.hmp("info snapshots").contains("vt-ready"))
                    #expect(try await qmp.hmp("loadvm vt-ready") == "")
                }
            } catch {
                Issue.record("\(format): \(error)\n\(target.stderrText)")
            }
            _ = await target.stop()
            try await group.shutdownGracefully()
        }
    }

    /// The backing files a case names, made for real in `dir`.
    static func makeFiles(for c: VMLaunchCase, in dir: String, environment env: [String: String]) async throws {
        let img = try QemuImg(environment: env)
        let base = dir + "/base.img"
        try await img.create(path: base, format: .raw, size: 16 << 20)
        for (disk, file) in c.files {
            let path = dir + "/" + file.path
            switch file.format {
            case .qcow2 where file.path.hasPrefix("disk-"):
                // A store image's overlay, as a VM's disks are.
                // Relative: QEMU resolves it beside the overlay, inside its own
                // directory, whose host path its mount namespace hides.
                try await img.create(path: path, format: .qcow2, size: nil, backing: .init(path: "base.img", format: .raw))
            case .qcow2:
                try await img.create(path: path, format: .qcow2, size: 64 << 20)
            case .raw where file.path.hasSuffix(".iso"):
                try makeISO(path, label: disk, environment: env)
            case .raw:
                try await img.create(path: path, format: .raw, size: 8 << 20)
            }
        }
        if case .efi = c.vm.firmware {
            let fw = try FirmwareFiles.find(architecture: c.vm.architecture, machineType: c.vm.machineType,
                                            directories: FirmwareFiles.defaultDirectories(environment: env))
            try FileManager.default.copyItem(atPath: fw.code, toPath: dir + "/efi-code.fd")
            #expect(try await fw.makeVars(at: dir + "/efi-vars.qcow2", qemuImg: img))
        }
        if let snapshot = c.snapshotImage {
            // The shim's own scratch, as a pool member's start makes it.
            #expect(try await img.createSnapshotScratch(in: dir) == dir + "/" + snapshot)
        }
        if c.vm.kernelBoot != nil {
            try fakeBzImage().write(to: URL(fileURLWithPath: dir + "/vmlinuz"))
            try Data(count: 4096).write(to: URL(fileURLWithPath: dir + "/initrd.img"))
        }
    }

    /// An ISO 9660 image from genisoimage (a raw file when it is missing).
    static func makeISO(_ path: String, label: String, environment env: [String: String]) throws {
        guard let tool = ExecutableSearch.find("genisoimage", environment: env) else {
            try Data(count: 1 << 20).write(to: URL(fileURLWithPath: path))
            return
        }
        let content = path + ".d"
        try FileManager.default.createDirectory(atPath: content, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: content) }
        try "instance-id: vm\n".write(toFile: content + "/meta-data", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = ["-quiet", "-V", "cidata", "-J", "-r", "-o", path, content]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "genisoimage for \(label)")
    }

    /// A file x86 QEMU loads as a Linux kernel: the boot protocol's setup
    /// header (`HdrS`, version 2.15, loaded high, room for an initrd and a
    /// command line) and zeros. The guest never
    /// runs it (QEMU stays at -S); loading it is what is checked.
    static func fakeBzImage() -> Data {
        var bytes = [UInt8](repeating: 0, count: 64 << 10)
        bytes[0x1F1] = 4                                  // setup_sects
        bytes[0x1FE] = 0x55; bytes[0x1FF] = 0xAA          // boot_flag
        bytes.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
        bytes[0x206] = 0x0F; bytes[0x207] = 0x02          // protocol 2.15
        bytes[0x211] = 0x01                               // loadflags: LOADED_HIGH
        bytes.replaceSubrange(0x22C..<0x230, with: [0xFF, 0xFF, 0xFF, 0x37])  // initrd_addr_max
        bytes.replaceSubrange(0x238..<0x23C, with: [0x00, 0x08, 0x00, 0x00])  // cmdline_size: 2 KiB
        return Data(bytes)
    }

    /// The ids of the `-device` arguments that are PCI functions.
    static func plannedPCIDeviceIDs(_ args: [String]) -> Set<String> {
        let pci: Set<String> = ["VGA", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet", "qemu-xhci", "ich9-ahci"]
        var out: Set<String> = []
        for (i, a) in args.enumerated() where a == "-device" && i + 1 < args.count {
            guard let o = try? JSONSerialization.jsonObject(with: Data(args[i + 1].utf8)) as? [String: Any],
                  let driver = o["driver"] as? String, let id = o["id"] as? String else { continue }
            if driver.hasSuffix("-pci") || pci.contains(driver) { out.insert(id) }
        }
        return out
    }

    /// Every `qdev_id` on every bus `query-pci` reports, bridges included.
    static func pciDeviceIDs(_ reply: JSONValue) -> Set<String> {
        var out: Set<String> = []
        func walk(_ devices: JSONValue?) {
            guard case .array(let list)? = devices else { return }
            for d in list {
                if let id = d["qdev_id"]?.stringValue, !id.isEmpty { out.insert(id) }
                walk(d["pci_bridge"]?["devices"])
            }
        }
        if case .array(let buses) = reply { for b in buses { walk(b["devices"]) } }
        return out
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
