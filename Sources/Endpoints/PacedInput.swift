import NIOCore

/// Input for a UART whose QEMU records (`-icount rr=record`): one byte at a
/// time, `gap` apart. In record mode QEMU's chardev reads input whenever the
/// UART says it can take a byte, but queues it as a replay event that
/// reaches the UART only when the vCPU next runs; a guest asleep in WFI with
/// no timer of its own runs again only at icount's 100 ms (guest time)
/// heartbeat. Meanwhile the UART still says it can take a byte, so a second
/// byte is read, and a UART with a one-byte receive register (STM32 USART,
/// CMSDK UART) keeps only the last of them. A byte written after the one
/// before reached the UART waits in the FIFO while the register is full, as
/// it does without recording. Confined to the hub's loop.
public final class PacedInput {
    let loop: any EventLoop
    let gap: TimeAmount
    /// Queued past this, the writing client is not read until it drains.
    static let highWater = 64 << 10
    /// Under `-icount shift=auto` a sleeping guest runs at least every 100 ms
    /// of guest time (icount's own timer), which follows the host's clock.
    public static let defaultGap = TimeAmount.milliseconds(150)

    private var pending: [UInt8] = []
    private var head = 0
    private var scheduled: Scheduled<Void>?
    private var last = NIODeadline.distantPast
    private var paused: (any Channel)?
    private var drainWaiters: [EventLoopPromise<Void>] = []
    private let write: ([UInt8]) -> Void

    init(loop: any EventLoop, gap: TimeAmount, write: @escaping ([UInt8]) -> Void) {
        self.loop = loop
        self.gap = gap
        self.write = write
    }

    var queued: Int { pending.count - head }

    /// Queues `bytes`; stops reading `from` (the writing client) while the queue is over `highWater`.
    func enqueue(_ bytes: some Sequence<UInt8>, from channel: (any Channel)?) {
        pending.append(contentsOf: bytes)
        if queued > Self.highWater, let channel, paused == nil {
            paused = channel
            _ = channel.setOption(ChannelOptions.autoRead, value: false)
        }
        pump()
    }

    /// Succeeds once every queued byte went to the UART and the last one
    /// had its gap to reach the guest.
    func drained() -> EventLoopFuture<Void> {
        if queued == 0, last + gap <= loop.now { return loop.makeSucceededVoidFuture() }
        let p = loop.makePromise(of: Void.self)
        drainWaiters.append(p)
        if queued == 0 { settleAfterGap() }
        return p.futureResult
    }

    private var settling: Scheduled<Void>?

    private func settleAfterGap() {
        guard settling == nil else { return }
        settling = loop.scheduleTask(deadline: last + gap) {
            self.settling = nil
            guard self.queued == 0 else { return }
            if self.last + self.gap > self.loop.now { return self.settleAfterGap() }  // a byte went meanwhile
            self.drainWaiters.forEach { $0.succeed() }
            self.drainWaiters = []
        }
    }

    /// Drops what is queued (a new session, or the UART gone).
    func reset() {
        scheduled?.cancel()
        scheduled = nil
        settling?.cancel()
        settling = nil
        pending.removeAll()
        head = 0
        resume()
        drainWaiters.forEach { $0.succeed() }
        drainWaiters = []
    }

    private func pump() {
        guard scheduled == nil, queued > 0 else { return }
        let due = last + gap
        if due > loop.now {
            scheduled = loop.scheduleTask(deadline: due) {
                self.scheduled = nil
                self.pump()
            }
            return
        }
        let byte = pending[head]
        head += 1
        if head == pending.count {
            pending.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4096, head * 2 >= pending.count {
            pending.removeFirst(head)
            head = 0
        }
        last = loop.now
        write([byte])
        if queued <= Self.highWater / 2 { resume() }
        if queued == 0, !drainWaiters.isEmpty { settleAfterGap() }
        pump()
    }

    private func resume() {
        guard let c = paused else { return }
        paused = nil
        _ = c.setOption(ChannelOptions.autoRead, value: true)
    }
}
