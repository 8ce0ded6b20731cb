import Synchronization
import Testing
@testable import TargetRuntime

/// `vtarget run`'s stdout: serial bytes written in the order the hubs read
/// them, from whichever thread reads them; a prefixed stream by whole lines;
/// `finish` flushes a partial line and ends the output.
@Suite struct SerialOutputTests {
    final class Collected: Sendable {
        let writes = Mutex<[[UInt8]]>([])
        var text: String { String(decoding: writes.withLock { $0.joined() }, as: UTF8.self) }
    }

    @Test func oneStreamGoesOutAsItCameAndNothingAfterTheEnd() async {
        let out = Collected()
        let output = SerialOutput(prefixed: false, names: ["a"]) { bytes in out.writes.withLock { $0.append(bytes) } }
        for i in 0..<200 { output.write(target: 0, device: "uart0", Array("\(i),".utf8)) }
        output.finish()
        output.write(target: 0, device: "uart0", Array("late".utf8))
        await output.drained()
        #expect(out.text == (0..<200).map { "\($0)," }.joined())
    }

    @Test func severalStreamsGoOutByLinesAndTheEndFlushesTheRest() async {
        let out = Collected()
        let output = SerialOutput(prefixed: true, names: ["n1", "n2"]) { bytes in out.writes.withLock { $0.append(bytes) } }
        output.write(target: 0, device: "uart0", Array("hel".utf8))
        output.write(target: 1, device: "uart0", Array("other\nhalf".utf8))
        output.write(target: 0, device: "uart0", Array("lo\nworld\n".utf8))
        output.write(target: 0, device: "uart1", Array("tail".utf8))
        await output.drained()
        #expect(out.writes.withLock { $0.map { String(decoding: $0, as: UTF8.self) } } == [
            "n2/uart0| other\n", "n1/uart0| hello\n", "n1/uart0| world\n", "n1/uart1| tail\n", "n2/uart0| half\n",
        ])
    }

    /// The hubs' loop and the session write from different threads: each call's bytes stay whole and in its thread's order.
    @Test func writesFromSeveralThreadsKeepEachOnesOrder() async {
        let out = Collected()
        let output = SerialOutput(prefixed: false, names: ["a"]) { bytes in out.writes.withLock { $0.append(bytes) } }
        await withTaskGroup(of: Void.self) { g in
            for t in 0..<4 { g.addTask { for i in 0..<100 { output.write(target: 0, device: "d", [UInt8(t), UInt8(i)]) } } }
        }
        await output.drained()
        let writes = out.writes.withLock { $0 }
        #expect(writes.count == 400)
        for t in 0..<4 { #expect(writes.filter { $0[0] == UInt8(t) }.map { Int($0[1]) } == Array(0..<100)) }
    }

    @Test func aDisabledOutputWritesNothing() async {
        let out = Collected()
        let output = SerialOutput(prefixed: false, names: ["a"], enabled: false) { bytes in out.writes.withLock { $0.append(bytes) } }
        output.write(target: 0, device: "d", [1, 2, 3])
        await output.drained()
        #expect(out.writes.withLock { $0.isEmpty })
    }
}
