import Foundation
import ReplayFormat
import Testing
import TestSupport

/// The traces a recording keeps beside QEMU's replay log: serial input as
/// it went to the UART, and every frame of the board's CAN devices in
/// candump's log format, read back with python-can and can-utils.
@Suite(.serialized) struct ReplayTraceTests {
    /// Node B of examples/can-pair.yaml alone: it echoes its console and
    /// answers every frame on "vehicle" with the next id.
    static let nodeB = """
        apiVersion: qemu.kubetarget.dev/v1alpha1
        kind: QemuVirtualTarget
        metadata:
          name: node-b
        spec:
          architecture: arm
          qemuConfig:
            machine: netduinoplus2
            drives:
              - {name: firmware, type: pflash, source: {configMap: {name: netduinoplus2-can-b-firmware}}}
            devices:
              - {name: console, type: serial}
              - {name: can0, type: can, bus: vehicle, uart: 1}
          readiness: {device: console, pattern: "slcan node 2", timeout: 60s}
        """

    /// python-can's reader on `path`: one line per frame, `ID DATA RX CHANNEL TIMESTAMP` (or `ID R DLC ...` for a remote frame).
    static func pythonCan(_ path: String, runtime: String) throws -> RunResult {
        let script = """
            import can, sys
            for m in can.CanutilsLogReader(sys.argv[1]):
                body = ("R%d" % m.dlc) if m.is_remote_frame else m.data.hex().upper()
                print("%X %s %s %s %s %s %.6f" % (m.arbitration_id, "x" if m.is_extended_id else "s", "fd" if m.is_fd else "cc",
                                                  body, "R" if m.is_rx else "T", m.channel, m.timestamp))
            """
        return try finish(launch(["-c", script, path], runtime: runtime, executable: python))
    }

    /// The pure formatter's every kind of frame, as python-can and can-utils' log2asc read them.
    @Test func candumpLinesReadWithPythonCanAndLog2asc() throws {
        let runtime = makeRuntimeDir()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        typealias F = CandumpLog.Frame
        let frames: [(F, CandumpLog.Direction)] = [
            (F(id: 0x123, extended: false, data: [0xDE, 0xAD, 0xBE, 0xEF]), .sent),
            (F(id: 0x1ABCDEF, extended: true, data: []), .received),
            (F(id: 0x7FF, extended: false, remote: true, dlc: 4), .received),
            (F(id: 0x42, extended: false, fd: true, fdFlags: 1, data: Array(0..<12)), .sent),
        ]
        let text = frames.enumerated().map { i, f in
            CandumpLog.line(microseconds: 1_764_550_923_000_000 + Int64(i) * 1500, interface: "vehicle", frame: f.0, direction: f.1) + "\n"
        }.joined()
        let path = runtime + "/frames.log"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try Self.pythonCan(path, runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").map(String.init) == [
            "123 s cc DEADBEEF T vehicle 1764550923.000000",
            "1ABCDEF x cc  R vehicle 1764550923.001500",
            "7FF s cc R4 R vehicle 1764550923.003000",
            "42 s fd 000102030405060708090A0B T vehicle 1764550923.004500",
        ], "\(r.stdout)")
        let asc = try shell("log2asc -I \(path) -O \(runtime)/frames.asc vehicle && cat \(runtime)/frames.asc", runtime: runtime)
        #expect(asc.code == 0, "\(asc.stderr)")
        #expect(asc.stdout.contains("123             Tx   d 4 DE AD BE EF") && asc.stdout.contains("1ABCDEFx        Rx   d 0")
                && asc.stdout.contains("7FF             Rx   r 4") && asc.stdout.contains("CANFD"), "\(asc.stdout)")
    }

    /// One recording of node B: a line typed on its console by socat, two
    /// frames sent to its bus by `vtarget can send`, each answered. The
    /// bundle's traces hold exactly that, in order, and `bundle show` and
    /// `bundle extract` list and unpack them.
    @Test func aRecordingKeepsSerialInputAndCANFrames() throws {
        let runtime = makeRuntimeDir()
        let bundles = runtime + "-bundles"
        let spec = runtime + ".yaml"
        defer { for d in [runtime, bundles, spec, runtime + "-x"] { try? FileManager.default.removeItem(atPath: d) } }
        try Self.nodeB.write(toFile: spec, atomically: true, encoding: .utf8)
        // Each frame is 14 SLCAN bytes paced at 150 ms: about 2 s to reach the board, then its answer.
        let wait = "\(vtarget) wait node-b --since-start --timeout 60s --for"
        let qmp = #"printf '{"execute":"qmp_capabilities"}\n{"execute":"query-status","id":7}\n' | socat -t 2 - UNIX-CONNECT:$VTARGET_QMP >/dev/null"#
        let script = "printf 'ping\\r' | socat -u - UNIX-CONNECT:$VTARGET_SERIAL_CONSOLE && \(qmp) && \(vtarget) can send vehicle 123#DEADBEEF && "
            + "\(wait) 'serial=can rx 1234DEADBEEF' >/dev/null && \(vtarget) can send vehicle 321#C0FFEE && "
            + "\(wait) 'serial=can rx 3213C0FFEE' >/dev/null && sleep 1"
        let record = try finish(launch(["run", "-f", spec, "-f", "\(firmware)/netduinoplus2-can-b-firmware.yaml", "--record", bundles,
                                        "--timeout", "120s", "--", "sh", "-c", script], runtime: runtime))
        #expect(record.code == 0, "\(record.stdout)\n\(record.stderr)")
        #expect(record.stdout.contains("pong") && record.stdout.contains("can rx 3213C0FFEE"), "\(record.stdout)")
        let recorded = try RecordedBundle.only(in: bundles)
        let bundle = recorded.path

        let work = runtime + "-x"
        let manifest = try recorded.extract(to: work, runtime: runtime)
        #expect(manifest.traceOrigin != nil)

        // Serial input: what socat typed, one paced byte a line, times growing.
        let input = try #require(manifest.files.first { $0.role == .serialInput && $0.device == "console" }, "\(manifest.files)")
        #expect(input.path == "traces/serial-console.in.log")
        let lines = try String(contentsOfFile: work + "/" + input.path, encoding: .utf8).split(separator: "\n")
        let parsed = lines.compactMap { SerialInputTrace.parse($0) }
        #expect(parsed.count == lines.count && input.entries == lines.count, "\(lines)")
        #expect(parsed.flatMap(\.bytes) == Array("ping\r".utf8), "\(lines)")
        #expect(parsed.allSatisfy { $0.bytes.count == 1 }, "paced: one byte a piece")
        #expect(parsed.map(\.microseconds) == parsed.map(\.microseconds).sorted())

        // CAN: each frame in, then the board's answer out, read by python-can.
        let can = try #require(manifest.files.first { $0.role == .canTrace && $0.device == "can0" }, "\(manifest.files)")
        #expect(can.path == "traces/can-can0.log" && can.entries == 4, "\(can)")
        let r = try Self.pythonCan(work + "/" + can.path, runtime: runtime)
        #expect(r.code == 0, "\(r.stderr)")
        let rows = r.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.map { $0.prefix(6).joined(separator: " ") } == [
            "123 s cc DEADBEEF R vehicle", "124 s cc DEADBEEF T vehicle", "321 s cc C0FFEE R vehicle", "322 s cc C0FFEE T vehicle",
        ], "\(r.stdout)")
        let times = rows.compactMap { $0.last.flatMap(Double.init) }
        #expect(times.count == 4 && times == times.sorted(), "\(times)")
        let now = Date().timeIntervalSince1970
        #expect(times.allSatisfy { $0 > now - 600 && $0 <= now }, "wall-clock times of this run: \(times), now \(now)")
        let asc = try shell("log2asc -I \(work)/\(can.path) -O \(work)/can.asc vehicle && cat \(work)/can.asc", runtime: runtime)
        #expect(asc.code == 0 && asc.stdout.contains("124             Tx   d 4 DE AD BE EF"), "\(asc.stdout)\(asc.stderr)")

        // QMP: the client's two commands as it sent them, and the replies as it got them (its own id back).
        let qmpTrace = try #require(manifest.files.first { $0.role == .qmpTrace }, "\(manifest.files.map(\.path))")
        #expect(qmpTrace.path == "traces/qmp.log")
        let qmpLines = try String(contentsOfFile: work + "/" + qmpTrace.path, encoding: .utf8).split(separator: "\n")
        let qmpParsed = qmpLines.compactMap { QMPTranscriptLog.parse($0) }
        #expect(qmpParsed.count == qmpLines.count && qmpTrace.entries == qmpLines.count, "\(qmpLines)")
        let mine = qmpParsed.filter { $0.client != nil }
        #expect(Set(mine.map(\.client)).count == 1, "one client: \(qmpLines)")
        #expect(mine.filter { $0.way == .toQEMU }.map { String($0.json) } == [#"{"execute":"qmp_capabilities"}"#, #"{"execute":"query-status","id":7}"#],
                "\(qmpLines)")
        #expect(mine.contains { $0.way == .fromQEMU && $0.json.contains("\"QMP\"") }, "the greeting: \(qmpLines)")
        #expect(mine.contains { $0.way == .fromQEMU && $0.json.contains("\"running\"") && $0.json.contains("7") }, "query-status's reply: \(qmpLines)")
        #expect(qmpParsed.map(\.microseconds) == qmpParsed.map(\.microseconds).sorted())

        // bundle show lists them, in text and in JSON.
        let show = try vt(["bundle", "show", bundle], runtime: runtime)
        #expect(show.code == 0, "\(show.stderr)")
        #expect(show.stdout.contains("Traces (second 0 = ") && show.stdout.contains("serial input of console: \(lines.count) lines  traces/serial-console.in.log")
                && show.stdout.contains("CAN frames (candump -L) of can0: 4 frames  traces/can-can0.log")
                && show.stdout.contains("QMP messages"), "\(show.stdout)")
        let json = try vt(["bundle", "show", "-o", "json", bundle], runtime: runtime)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let traces = (object?["traces"] as? [[String: Any]]) ?? []
        #expect(traces.compactMap { $0["path"] as? String }.sorted() == ["traces/can-can0.log", "traces/qmp.log", "traces/serial-console.in.log"], "\(json.stdout)")
        #expect(traces.first { $0["role"] as? String == "canTrace" }?["entries"] as? Int == 4, "\(json.stdout)")

        // The frames reached the board through its UART, so QEMU's log holds them: the replay needs no bus.
        let replay = try vt(["replay", bundle], runtime: runtime)
        #expect(replay.code == 0 && replay.stderr.contains("console: serial output identical"), "\(replay.stdout)\n\(replay.stderr)")
        #expect(replay.stdout.contains("can rx 3213C0FFEE"), "\(replay.stdout)")
    }
}
