#if canImport(Glibc)
import Glibc
#endif
import HostOS

/// vtarget's ends of one UART's FIFO pair (`<path>.in`, `<path>.out`), made
/// and opened before QEMU starts, so nothing else can take QEMU's place.
struct UARTFIFOs {
    /// Reads what the guest sends (`.out`).
    var fromGuest: Int32
    /// Writes what the guest receives (`.in`).
    var toGuest: Int32
    /// A write end of `.out` held until QEMU has opened its own: a FIFO with
    /// no writer reads as end of file, and QEMU is not there yet. Closed once
    /// the monitor answers, after which end of file means QEMU is gone.
    var placeholder: Int32

    /// Makes the pair (mode 0600, owned by `owner` when given: the uid QEMU
    /// runs as) and opens vtarget's ends without blocking.
    static func make(path: String, owner: (uid: UInt32, gid: UInt32)?) throws(RuntimeError) -> UARTFIFOs {
        var opened: [Int32] = []
        func fail(_ what: String) -> RuntimeError {
            let why = String(cString: strerror(errno))
            for fd in opened { Glibc.close(fd) }
            return RuntimeError("cannot \(what): \(why)")
        }
        for end in [".in", ".out"] {
            let p = path + end
            unlink(p)  // one left by an earlier QEMU in this directory
            if mkfifo(p, 0o600) != 0 { throw fail("make the FIFO \(p)") }
            if let owner, lchown(p, owner.uid, owner.gid) != 0 { throw fail("hand \(p) to uid \(owner.uid)") }
        }
        // Reading `.out` first: opening its write end needs a reader.
        let fromGuest = open(path + ".out", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fromGuest < 0 { throw fail("open \(path).out") }
        opened.append(fromGuest)
        let placeholder = open(path + ".out", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        if placeholder < 0 { throw fail("open \(path).out") }
        opened.append(placeholder)
        // Read-write, so it opens with no reader yet and never raises SIGPIPE.
        let toGuest = open(path + ".in", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        if toGuest < 0 { throw fail("open \(path).in") }
        return UARTFIFOs(fromGuest: fromGuest, toGuest: toGuest, placeholder: placeholder)
    }

    func close() {
        for fd in [fromGuest, toGuest, placeholder] where fd >= 0 { Glibc.close(fd) }
    }
}
