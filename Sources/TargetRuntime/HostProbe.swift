#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import MachineCatalog
import QEMULaunch
import Sandbox

/// What this host and its QEMU can do, probed once and cached.
public enum HostProbe {
    public static func architecture() -> Architecture {
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: u.machine) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        switch machine {
        case "aarch64", "arm64": return .aarch64
        case let m where m.hasPrefix("arm"): return .arm
        case "i386", "i686": return .i386
        default: return .x86_64
        }
    }

    /// Host facts for planning. The KVM probe runs only when some target
    /// could use KVM (a native-architecture board that allows it).
    public static func facts(environment: [String: String], probeKVM: Bool) async -> HostFacts {
        let kvm = probeKVM ? await kvm(environment: environment).usable : false
        return HostFacts(architecture: architecture(), kvmUsable: kvm,
                         memoryBytes: (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)).flatMap(memTotal))
    }

    /// `MemTotal` of a /proc/meminfo text, in bytes (the kernel writes kB).
    static func memTotal(_ meminfo: String) -> UInt64? {
        for line in meminfo.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[2] == "kB", let kb = UInt64(fields[1]) else { return nil }
            return kb * 1024
        }
        return nil
    }

    public struct KVMVerdict: Sendable {
        public var usable: Bool
        public var reason: String
    }

    /// A boot sector that writes "OK" to COM1 and halts.
    static let probeBootSector: [UInt8] = {
        let code: [UInt8] = [0xBA, 0xF8, 0x03, 0xB0, 0x4F, 0xEE, 0xB0, 0x4B, 0xEE, 0xB0, 0x0A, 0xEE, 0xFA, 0xF4, 0xEB, 0xFD]
        return code + [UInt8](repeating: 0, count: 510 - code.count) + [0x55, 0xAA]
    }()

    /// KVM is never assumed from /dev/kvm alone: on nested hosts it exists,
    /// opens, and then aborts (`-cpu host`: an MSR assertion) or hangs guests.
    /// So a guest is booted under `-accel kvm -cpu host` with a deadline;
    /// the verdict is cached per kernel release and QEMU build.
    public static func kvm(environment: [String: String]) async -> KVMVerdict {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else {
            return KVMVerdict(usable: false, reason: "/dev/kvm is missing or not accessible")
        }
        guard architecture() == .x86_64, let qemu = ExecutableSearch.find("qemu-system-x86_64", environment: environment) else {
            return KVMVerdict(usable: false, reason: "qemu-system-x86_64 is not installed")
        }
        var st = stat()
        stat(qemu, &st)
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let key = "\(release)-\(st.st_size)-\(st.st_mtim.tv_sec)".map { $0.isLetter || $0.isNumber ? $0 : "_" }
        let cacheFile = cacheDirectory(environment) + "/kvm-" + String(key)
        if let data = FileManager.default.contents(atPath: cacheFile) {
            let text = String(decoding: data, as: UTF8.self)
            return KVMVerdict(usable: text.hasPrefix("yes"), reason: String(text.drop { $0 != " " }.dropFirst()))
        }
        let verdict = await bootProbe(qemu)
        _ = try? FileManager.default.createDirectory(atPath: cacheDirectory(environment), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: cacheFile, contents: Data(((verdict.usable ? "yes " : "no ") + verdict.reason).utf8))
        return verdict
    }

    static func bootProbe(_ qemu: String) async -> KVMVerdict {
        var template = Array("/tmp/vtarget-kvm-XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            return KVMVerdict(usable: false, reason: "cannot create a probe directory")
        }
        defer { RuntimeDirectory.removeTree(dir) }
        let image = dir + "/probe.img"
        guard FileManager.default.createFile(atPath: image, contents: Data(probeBootSector)) else {
            return KVMVerdict(usable: false, reason: "cannot write the probe image")
        }
        guard let (output, finished) = try? await capture(qemu, [
            "-accel", "kvm", "-cpu", "host", "-machine", "pc", "-nodefaults", "-no-user-config", "-display", "none",
            "-blockdev", QEMUJSON.argument(BlockdevNode.file("file-probe", path: image, readOnly: false)),
            "-blockdev", QEMUJSON.argument(BlockdevNode.format(.raw, "fmt-probe", over: "file-probe", readOnly: false)),
            // Writable: ide-hd refuses a read-only node.
            "-device", QEMUJSON.argument(QEMUDevice(driver: "ide-hd", id: "dev-probe", drive: "fmt-probe")), "-serial", "stdio",
        ], until: "OK", deadline: 5) else {
            return KVMVerdict(usable: false, reason: "the probe could not start QEMU")
        }
        if output.contains("OK") { return KVMVerdict(usable: true, reason: "a guest booted under -accel kvm -cpu host") }
        let said = output.split(separator: "\n").last.map(String.init) ?? ""
        return KVMVerdict(usable: false, reason: finished
            ? "QEMU failed under -accel kvm -cpu host: \(said)"
            : "a guest under -accel kvm -cpu host printed nothing within 5 s (nested virtualisation?)")
    }

    static func cacheDirectory(_ environment: [String: String]) -> String {
        (environment["XDG_CACHE_HOME"] ?? ((environment["HOME"] ?? "/tmp") + "/.cache")) + "/vtarget"
    }

    /// The `-machine` names a QEMU binary provides, cached per binary path,
    /// size and modification time under `$XDG_CACHE_HOME/vtarget`.
    public static func machines(of binaryPath: String, environment: [String: String]) async -> Set<String>? {
        var st = stat()
        guard stat(binaryPath, &st) == 0 else { return nil }
        let cacheDir = cacheDirectory(environment)
        let key = "\(binaryPath)-\(st.st_size)-\(st.st_mtim.tv_sec)".map { $0.isLetter || $0.isNumber ? $0 : "_" }
        let cacheFile = cacheDir + "/machines-" + String(key)
        if let data = FileManager.default.contents(atPath: cacheFile) {
            return Set(String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init))
        }
        guard let (output, _) = try? await capture(binaryPath, ["-machine", "help"], deadline: 10) else { return nil }
        var names = Set<String>()
        for line in output.split(separator: "\n").dropFirst() {
            if let name = line.split(separator: " ").first { names.insert(String(name)) }
        }
        _ = try? FileManager.default.createDirectory(atPath: cacheDir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: cacheFile, contents: Data(names.sorted().joined(separator: "\n").utf8))
        return names
    }

    /// Runs a short command, stdout and stderr together, until it ends, its
    /// output contains `until`, or `deadline` seconds pass; then it is killed.
    /// Returns the output and whether the command ended by itself.
    static func capture(_ path: String, _ args: [String], until: String? = nil, deadline: Double) async throws -> (String, Bool) {
        let r = try await ProcessCapture.run(until: until, deadline: deadline) { w in
            SpawnRequest(executable: path, arguments: args, environment: ["PATH=/usr/bin:/bin", "LC_ALL=C"], fds: [-1, w, w])
        }
        return (r.output, r.ended)
    }
}
