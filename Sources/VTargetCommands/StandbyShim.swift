#if canImport(Glibc)
import Glibc
#endif
import HostOS
import InstanceContract
import TargetSpec

/// `vtarget --standby-shim PADDING`: a shim the supervisor starts before an
/// instance needs one. A fresh process of this binary spends milliseconds
/// before it can read its spec: the runtime's start, then the first
/// conformance lookups and metadata of the JSON and YAML decoders and the
/// machine catalog, each a scan of the whole binary's conformance table.
/// The standby pays those while nothing waits, then blocks on stdin for its
/// `StandbyAssignment`, takes the log as stdout and stderr, the instance's
/// directory and the shim's title, and runs as the shim spawned for it
/// would have: the same argv, parsed by the same code, waiting for the same
/// go byte on the same pipe.
enum StandbyShim {
    static func serve() async -> Int32 {
        warmUp()
        // End of file: the supervisor stopped, or needs no standby any more.
        guard let header = FileDescriptors.readExactly(0, 4) else { return ExitCode.success }
        guard let length = StandbyAssignment.frameLength(header), let body = FileDescriptors.readExactly(0, length),
              let assignment = try? StandbyAssignment.parse(body) else {
            return ExitCode.failure
        }
        let log = open(assignment.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        if log >= 0 {
            dup2(log, 1)
            dup2(log, 2)
            close(log)
        }
        guard chdir(assignment.workingDirectory) == 0 else {
            printError("vtarget: standby shim: cannot enter \(assignment.workingDirectory): \(String(cString: strerror(errno)))")
            return ExitCode.failure
        }
        _ = Processes.setOwnTitle([CommandLine.arguments.first ?? Processes.ownExecutable] + assignment.arguments)
        return await VTarget.runMain(assignment.arguments)
    }

    /// What every shim does first, done on a throwaway: its command line
    /// parsed, the machine catalog read, a typical board spec decoded. Only
    /// the process's caches keep anything; nothing is written or started.
    /// True when every step did its work (StandbyShimTests holds it to that).
    @discardableResult
    static func warmUp() -> Bool {
        let shim = ShimArguments(instance: "default/standby", specFile: "/standby.yaml", statusFile: "/standby.json", relativeTo: "/")
        let parsed = VTarget.fastRun(shim.arguments()) != nil
        guard let catalog = try? Environment.catalog(Environment.variables) else { return false }
        let decoder = ResourceDecoder(catalog: catalog, options: DecodeOptions())
        guard let decoded = try? decoder.decode([SourceFile(path: "/standby.yaml", directory: "/", bytes: Array(sample.utf8))]),
              let instances = try? Workload.instances(from: decoded.resources) else { return false }
        return parsed && instances.count == 1
    }

    /// The shape of spec a supervisor most often composes: a board on a
    /// ConfigMap's firmware, a UART with a readiness pattern, a CAN device.
    static let sample = """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: standby-firmware}
        binaryData: {firmware.elf: f0VMRgEBAQ==}
        ---
        apiVersion: qemu.kubetarget.dev/v1alpha1
        kind: QemuVirtualTarget
        metadata: {name: standby, labels: {app: standby}}
        spec:
          ttl: 10m
          qemuConfig:
            machine: stm32vldiscovery
            drives:
              - {name: firmware, type: pflash, source: {configMap: {name: standby-firmware, key: firmware.elf}}}
            devices:
              - {name: console, type: serial}
              - {name: can0, type: can, bus: standby, uart: 1}
          readiness: {device: console, pattern: "ready", timeout: 30s}

        """
}
