#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
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

    /// KVM is never assumed from /dev/kvm alone: on nested hosts it exists,
    /// opens, and then aborts or hangs guests. Until a boot probe proves it,
    /// `accel: auto` means TCG; `VTARGET_KVM=1` declares it proven.
    public static func facts(environment: [String: String]) -> HostFacts {
        let declared = environment["VTARGET_KVM"] == "1" && access("/dev/kvm", R_OK | W_OK) == 0
        return HostFacts(architecture: architecture(), kvmUsable: declared)
    }

    /// The `-machine` names a QEMU binary provides, cached per binary path,
    /// size and modification time under `$XDG_CACHE_HOME/vtarget`.
    public static func machines(of binaryPath: String, environment: [String: String]) async -> Set<String>? {
        var st = stat()
        guard stat(binaryPath, &st) == 0 else { return nil }
        let cacheDir = (environment["XDG_CACHE_HOME"] ?? ((environment["HOME"] ?? "/tmp") + "/.cache")) + "/vtarget"
        let key = "\(binaryPath)-\(st.st_size)-\(st.st_mtim.tv_sec)".map { $0.isLetter || $0.isNumber ? $0 : "_" }
        let cacheFile = cacheDir + "/machines-" + String(key)
        if let data = FileManager.default.contents(atPath: cacheFile) {
            return Set(String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init))
        }
        guard let output = try? await capture(binaryPath, ["-machine", "help"]) else { return nil }
        var names = Set<String>()
        for line in output.split(separator: "\n").dropFirst() {
            if let name = line.split(separator: " ").first { names.insert(String(name)) }
        }
        _ = try? FileManager.default.createDirectory(atPath: cacheDir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: cacheFile, contents: Data(names.sorted().joined(separator: "\n").utf8))
        return names
    }

    /// Runs a short command and returns its stdout.
    static func capture(_ path: String, _ args: [String]) async throws -> String {
        let (r, w) = try makePipe()
        let child: ChildProcess
        do {
            child = try await ChildProcess.spawn(SpawnRequest(
                executable: path, arguments: args, environment: ["PATH=/usr/bin:/bin", "LC_ALL=C"], fds: [-1, w, -1]))
        } catch {
            close(r); close(w)
            throw error
        }
        close(w)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(r, &buf, buf.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        close(r)
        _ = await child.waitForExit()
        return String(decoding: out, as: UTF8.self)
    }
}
