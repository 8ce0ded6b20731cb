import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import HostOS
import InstanceContract
import QMP
import TargetRuntime

/// `vtarget gdb NAME`: gdb-multiarch attached to the instance's GDB stub.
///
/// QEMU's stub takes one client; a second one connecting to the socket would
/// sit in the listen backlog and hang. So this command refuses while the
/// stub has a client (QEMU's own view, from `query-chardev`) and holds a lock
/// in the instance's directory for as long as gdb runs, naming the holder.
struct GDB: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gdb",
        abstract: "Debug an instance: gdb-multiarch attached to its GDB stub (a `type: gdb` device).",
        discussion: """
            The architecture comes from QEMU's stub; give --firmware ELF for symbols. Arguments after \
            `--` go to gdb as they are, e.g. `vtarget gdb board --firmware fw.elf -- -batch -ex 'info registers pc'`. \
            One debugger at a time: a second `vtarget gdb`, or any client while the stub has one, is refused \
            with who holds it.
            """)

    @OptionGroup var instance: InstanceOptions

    @Option(help: "An ELF with the firmware's symbols, loaded with gdb's `file`.")
    var firmware: String?

    @Option(name: .customLong("gdb"), help: "The gdb to run.")
    var gdbProgram = "gdb-multiarch"

    @Argument(parsing: .postTerminator, help: "Arguments passed to gdb.")
    var gdbArguments: [String] = []

    func run() async throws {
        if let firmware, access(firmware, R_OK) != 0 {
            throw RuntimeError("--firmware \(firmware): cannot be read (\(String(cString: strerror(errno)))); give the ELF the target runs", code: .badInput)
        }
        let record = try instance.locate()
        guard let socket = record.gdbSocket else {
            throw RuntimeError("instance \(record.name) has no GDB stub; add a device `{name: gdb, type: gdb}` to its spec.qemuConfig.devices",
                               code: .notFound)
        }
        let lock = try GDBLock.acquire(record.layout.gdbLock, instance: record.name)
        if let holder = try await stubClient(record) {
            throw RuntimeError("the GDB stub of \(record.name) is in use by another client (\(holder)); detach it first", code: .io)
        }
        let arguments = GDBInvocation(program: gdbProgram, symbols: firmware, socket: socket, extra: gdbArguments).argv
        // gdb inherits the lock's descriptor: the lock lasts as long as gdb.
        lock.keepAcrossExec()
        let argv = arguments.map { strdup($0) } + [nil]
        execvp(gdbProgram, argv)
        throw RuntimeError("cannot run \(gdbProgram): \(String(cString: strerror(errno))); install Debian's gdb-multiarch", code: .spawn)
    }

    /// QEMU's socket chardev reports its peer in `query-chardev`'s filename
    /// (`disconnected:unix:...` while it has none).
    private func stubClient(_ record: InstanceRecord) async throws -> String? {
        let qmp = try await QMPClient.connect(path: record.layout.qmpSocket, timeout: 10)
        defer { qmp.close() }
        let chardevs = try await qmp.execute("query-chardev")
        guard case .array(let list) = chardevs,
              let stub = list.first(where: { $0["label"]?.stringValue == "vt-gdb" }),
              let filename = stub["filename"]?.stringValue else { return nil }
        return filename.hasPrefix("disconnected:") ? nil : filename
    }
}

/// How gdb is started on a stub's socket: `vtarget gdb` and `replay --gdb`.
struct GDBInvocation {
    var program: String
    /// An ELF whose symbols gdb loads first.
    var symbols: String?
    var socket: String
    var extra: [String]

    var argv: [String] {
        [program, "-q"] + (symbols.map { [$0] } ?? []) + ["-ex", "target remote \(socket)"] + extra
    }
}

/// An flock on `InstanceLayout.gdbLock` with the holder's pid written inside.
struct GDBLock {
    let fd: Int32

    static func acquire(_ path: String, instance: String) throws -> GDBLock {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw RuntimeError("cannot open \(path): \(String(cString: strerror(errno)))", code: .io)
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            let holder = String(decoding: buffer.prefix(max(0, n)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let who = Int32(holder).map { "pid \($0)" + (commandLine(of: $0).map { " (\($0))" } ?? "") } ?? "another vtarget gdb"
            throw RuntimeError("the GDB stub of \(instance) is in use by \(who); one debugger at a time", code: .io)
        }
        ftruncate(fd, 0)
        FileDescriptors.writeAll(fd, Array("\(getpid())\n".utf8))
        return GDBLock(fd: fd)
    }

    private static func commandLine(of pid: Int32) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
    }

    /// exec keeps the pid, so the pid inside stays true for gdb.
    func keepAcrossExec() {
        _ = fcntl(fd, F_SETFD, 0)
    }
}
