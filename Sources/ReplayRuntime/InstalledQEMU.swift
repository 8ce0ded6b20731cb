import HostOS
import InstanceContract
import ReplayFormat
import Sandbox
import TargetRuntime

/// The QEMU binary a run uses: its path on PATH, the first line of its
/// `--version` and its sha256. A replay is only byte-exact on the same
/// binary, so a bundle carries this and `replay` compares it.
public enum InstalledQEMU {
    public static func identify(binary: String, environment: [String: String]) async throws(RuntimeError) -> (path: String, identity: BundleManifest.QEMUIdentity) {
        guard let path = ExecutableSearch.find(binary, environment: environment) else {
            throw RuntimeError("\(binary) not found in PATH; a replay needs the QEMU the bundle was recorded with (install qemu-system-arm, or set PATH)",
                               code: .badInput)
        }
        let version: String
        do {
            let r = try await ProcessCapture.run(deadline: 20) { w in
                SpawnRequest(executable: path, arguments: ["--version"], environment: ["PATH=/usr/bin:/bin", "LC_ALL=C"], fds: [-1, w, w])
            }
            version = r.output.split(separator: "\n").first.map(String.init) ?? ""
            guard r.status == .exited(0), !version.isEmpty else {
                throw RuntimeError("\(path) --version failed (\(r.status)): \(r.output)", code: .badInput)
            }
        } catch let e as RuntimeError {
            throw e
        } catch {
            throw RuntimeError("cannot run \(path) --version: \(error)", code: .spawn, cause: error)
        }
        let digest = try FileDigest.sha256(path).digest
        return (path, BundleManifest.QEMUIdentity(binary: binary, version: version, sha256: digest))
    }
}
