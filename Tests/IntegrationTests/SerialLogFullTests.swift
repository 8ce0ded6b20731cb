import Foundation
import Testing
import TestSupport

/// Issue 14.20: a serial log on a full file system says so once and the
/// UART keeps serving its clients. The run's directory is a 1 MiB tmpfs
/// (a mount namespace of its own, so root only), filled once Ready.
@Suite struct SerialLogFullTests {
    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func aFullDiskStopsTheLogNotTheClients() throws {
        let runtime = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let client = """
            import os, socket, sys, time
            for i in range(3):
                s = socket.socket(socket.AF_UNIX); s.connect(os.environ["VTARGET_SERIAL_UART0"]); s.settimeout(10)
                # 16 KiB echoed: more than the room left in the logs' last pages.
                s.sendall(b"x" * 16384 + b"\\r"); time.sleep(1)
                s.sendall(b"ping\\r"); got = b""
                while b"pong" not in got:
                    got += s.recv(4096)
                s.close()
                # Not stdout: vtarget prints the UART there too, and lines interleave.
                with open(sys.argv[1], "a") as out: print("client", i, "got pong", file=out)
            """
        try client.write(toFile: runtime + ".py", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: runtime + ".py"); try? FileManager.default.removeItem(atPath: runtime + ".out") }
        let inner = "dd if=/dev/zero of=\\\"$VTARGET_RUNTIME_DIR/fill\\\" bs=4k 2>/dev/null; \(repoRoot)/.venv/bin/python \(runtime).py \(runtime).out"
        let r = try shell("""
            cd \(repoRoot) && timeout 120 unshare -m sh -c 'mount -t tmpfs -o size=1m,mode=0711 vt-full "$VTARGET_RUNTIME_DIR" && \
            \(vtarget) run -f examples/lm3s6965evb.yaml -f \(firmware)/lm3s6965evb-firmware.yaml --timeout 60s -- sh -c "\(inner)"'
            """, runtime: runtime)
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        let heard = (try? String(contentsOfFile: runtime + ".out", encoding: .utf8)) ?? ""
        #expect(heard.contains("client 2 got pong"), "\(heard)\n\(r.stderr)")
        let notes = r.stderr.components(separatedBy: "\n").filter { $0.contains("the serial log stopped") }
        #expect(notes.count == 1, "\(r.stderr)")
        #expect(notes.first?.contains("uart0: the serial log stopped: cannot write") == true
                && notes.first?.contains("No space left on device; clients still get the output") == true, "\(r.stderr)")
    }
}
