import Foundation
import Testing
import TestSupport

/// `vtarget gdb`: Debian's gdb-multiarch on the target's GDB stub, one
/// debugger at a time, with who holds it said to the second.
@Suite struct GDBCommandTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb-multiarch"), "needs gdb-multiarch"))
    func attachesWithSymbolsAndRefusesASecondDebugger() throws {
        let runtime = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let spec = runtime + ".yaml"
        try (targetYAML("dbg", """
            machine: lm3s6965evb
            drives: [{name: firmware, type: pflash, source: {configMap: {name: lm3s6965evb-firmware}}}]
            devices: [{name: uart0, type: serial}, {name: gdb, type: gdb}]
            """) + "\n  readiness: {device: uart0, pattern: \"echo ready\", timeout: 30s}\n").write(toFile: spec, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: spec) }
        let out = runtime + ".first"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let elf = "\(firmware)/lm3s6965evb.elf"
        // 1: vtarget gdb with symbols, holding the stub for 3 s; 2: a second vtarget gdb
        // meanwhile; 3: a raw client (socat) holding the socket; 4: vtarget gdb again, alone.
        let inner = """
            (\(vtarget) gdb dbg --firmware \(elf) -- -batch -ex 'info registers pc' -ex 'shell sleep 3' > \(out) 2>&1 &) ; \
            sleep 1.5; \(vtarget) gdb dbg -- -batch -ex 'info registers pc'; echo second=$?; sleep 3; \
            (socat -u UNIX-CONNECT:$VTARGET_GDB EXEC:'sleep 3' &) ; sleep 1; \
            \(vtarget) gdb dbg -- -batch -ex 'info registers pc'; echo third=$?; sleep 3; \
            \(vtarget) gdb dbg -- -batch -ex 'info registers pc'; echo fourth=$?
            """
        let r = try shell("cd \(repoRoot) && timeout 120 \(vtarget) run -f \(spec) -f \(firmware)/lm3s6965evb-firmware.yaml --timeout 60s -- sh -c \"\(inner.replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "$", with: "\\$"))\"", runtime: runtime)
        #expect(r.code == 0, "\(r.stdout)\n\(r.stderr)")
        let first = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        // With the ELF, gdb names the function and source line the core stopped in.
        #expect(first.contains("pc ") && first.contains("<main") && first.contains("banner_echo.c"), "\(first)")
        #expect(r.stdout.contains("second=1") && r.stderr.contains("the GDB stub of dbg is in use by pid ")
                && r.stderr.contains("gdb-multiarch"), "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("third=1") && r.stderr.contains("in use by another client"), "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("fourth=0"), "\(r.stdout)\n\(r.stderr)")
    }

    @Test func aTargetWithoutAStubIsToldHowToGetOne() throws {
        let runtime = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let r = try shell("cd \(repoRoot) && timeout 60 \(vtarget) run -f examples/lm3s6965evb.yaml -f \(firmware)/lm3s6965evb-firmware.yaml --timeout 30s -- \(vtarget) gdb lm3s6965evb", runtime: runtime)
        #expect(r.code == 1, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("has no GDB stub; add a device `{name: gdb, type: gdb}`"), "\(r.stderr)")
    }
}
