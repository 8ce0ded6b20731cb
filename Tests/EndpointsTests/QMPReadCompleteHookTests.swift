import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import QMP

/// The hook a proxy flushes its clients from is called at the end of every
/// read of QEMU's, for the life of the instance. It was once kept so that
/// each call wrapped it deeper (two reabstraction thunks a read): the k-th
/// call then ran 2k thunks, so a forwarded command got slower the longer the
/// instance lived, and the stack overflowed in the end. Here it is called
/// 100,000 times: with that fault, 10^10 thunk calls and a 200,000-frame
/// stack, which does not finish.
@Suite struct QMPReadCompleteHookTests {
    @Test func theHookStaysOneCallDeepOverManyReads() throws {
        let (handler, core, events) = QMPClient.makeHandler()
        let channel = EmbeddedChannel(handler: handler)
        let client = QMPClient(channel: channel, core: core, events: events)
        let calls = Mutex(0)
        client.onReadComplete { calls.withLock { $0 += 1 } }
        let reads = 100_000
        for _ in 0..<reads { channel.pipeline.fireChannelReadComplete() }
        #expect(calls.withLock { $0 } == reads)
        _ = try channel.finish()
    }
}
