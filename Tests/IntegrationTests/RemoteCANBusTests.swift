#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import TestSupport

/// A CAN bus served for other machines, as on a cluster: `vtarget can serve
/// BUS --listen` in one runtime directory (the bus's Pod), the two nodes of
/// can-pair in two more (their own Pods), joining over socketcand TCP
/// because VTARGET_REMOTE_CAN names the bus.
@Suite(.serialized) struct RemoteCANBusTests {
    @Test func twoRunsJoinARemoteBus() throws {
        let pair = try String(contentsOfFile: repoRoot + "/examples/can-pair.yaml", encoding: .utf8)
        let docs = pair.components(separatedBy: "\n---\n")
        #expect(docs.count == 2)
        let dir = "/tmp/vt-remote-bus-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try docs[0].write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        try docs[1].write(toFile: dir + "/b.yaml", atomically: true, encoding: .utf8)
        let busRuntime = makeRuntimeDir(), runtimeA = makeRuntimeDir(), runtimeB = makeRuntimeDir()
        defer { for r in [busRuntime, runtimeA, runtimeB] { expectNothingLeft(r) } }

        let port = try freeLoopbackPort()
        let server = try launch(["can", "serve", "vehicle", "--listen", "127.0.0.1:\(port)"], runtime: busRuntime)
        var listening = false
        for _ in 0..<100 where !listening {
            listening = (try? shell("exec 3<>/dev/tcp/127.0.0.1/\(port)", runtime: busRuntime))?.code == 0
            if !listening { usleep(100_000) }
        }
        // /bin/sh may lack /dev/tcp: the bus record says it listens too.
        if !listening { listening = FileManager.default.fileExists(atPath: busRuntime + "/bus-vehicle/bus.json") }
        #expect(listening, "the bus host listens on 127.0.0.1:\(port)")

        let remote = ["VTARGET_REMOTE_CAN": "vehicle=127.0.0.1:\(port)"]
        let a = try launch(["run", "-f", dir + "/a.yaml", "-f", "\(firmware)/stm32vldiscovery-can-a-firmware.yaml", "--timeout", "90s"],
                           runtime: runtimeA, environment: remote)
        // B answers each frame it hears after printing it, so it stays up until A has heard an answer:
        // a B that ended on its first "can rx 100" could be stopped before that answer reached the bus.
        let b = try launch(["run", "-f", dir + "/b.yaml", "-f", "\(firmware)/netduinoplus2-can-b-firmware.yaml",
                            "--timeout", "60s"], runtime: runtimeB, environment: remote)
        let heardByB = readUntil(b.1, "can rx 100", seconds: 60)
        #expect(heardByB.contains("can rx 100"), "node B, joined to the remote bus, heard node A: \(heardByB.suffix(2000))")
        let heardByA = readUntil(a.1, "can rx 101", seconds: 60)
        #expect(heardByA.contains("can rx 101"), "node A heard node B's answers: \(heardByA.suffix(2000))")
        // Neither run started a bus of its own: the bus is the remote one.
        #expect(busHosts(runtimeA).isEmpty && busHosts(runtimeB).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: runtimeA + "/bus-vehicle"))
        let dump = try vt(["can", "dump", "vehicle", "--count", "2", "--timeout", "10s"], runtime: busRuntime)
        #expect(dump.stdout.contains("  vehicle  100        [1]  "), "the served bus carries node A's frames: \(dump.stdout) \(dump.stderr)")
        for node in [a, b] { node.0.interrupt() }
        for (name, node) in [("A", a), ("B", b)] {
            let r = finish(node)
            #expect(r.code == 130, "node \(name) ended on the interrupt (128+SIGINT): \(r.code) \(r.stderr.suffix(2000))")
        }
        // A served bus outlives its targets; it ends with a signal and takes its files along.
        #expect(server.0.isRunning, "the served bus lives on when its targets leave")
        server.0.terminate()
        let rs = finish(server)
        #expect(rs.code == 0, "\(rs.stderr)")
        #expect(rs.stderr.contains("CAN bus vehicle on 127.0.0.1:\(port)"))
    }

    /// Bad `--listen` addresses are bad input (exit 2), named with what would be valid.
    @Test func badAddressesAreRefused() throws {
        let runtime = makeRuntimeDir()
        defer { expectNothingLeft(runtime) }
        for (address, message) in [("nope", "is not HOST:PORT"), ("127.0.0.1:0", "a port from 1 to 65535"), (":29536", "has no host")] {
            let r = try vt(["can", "serve", "vehicle", "--listen", address], runtime: runtime)
            #expect(r.code == 2 && r.stderr.contains(message), "\(address): \(r.code) \(r.stderr)")
        }
        // A run whose VTARGET_REMOTE_CAN is malformed is refused before anything starts.
        let seed = repoRoot + "/examples/seed/stm32f4-qemu.yaml", firmware = repoRoot + "/firmware-samples/build/stm32f4-firmware.yaml"
        for (value, message) in [("vehicle", "is not BUS=HOST:PORT"), ("vehicle=host:0", "a port from 1 to 65535"), ("a/b=h:1", "is not a bus name")] {
            let r = finish(try launch(["run", "-f", seed, "-f", firmware, "--timeout", "20s"], runtime: runtime,
                                      environment: ["VTARGET_REMOTE_CAN": value]))
            #expect(r.code == 2 && r.stderr.contains(message), "\(value): \(r.code) \(r.stderr)")
        }
    }
}
