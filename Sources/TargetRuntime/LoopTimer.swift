import NIOCore

/// Sleeping on an event loop's timer.
enum LoopTimer {
    /// Until `seconds` have passed, or the task is cancelled. Not
    /// `Task.sleep`: on Linux a pending `Task.sleep` wakes libdispatch once a
    /// second until it is due, so a TTL of hours cost every idle shim a
    /// wake-up a second; NIO's timerfd fires once, when due.
    static func sleep(_ seconds: Double, on loop: any EventLoop) async {
        let due = loop.scheduleTask(in: .nanoseconds(Int64(max(0, seconds) * 1e9))) {}
        await withTaskCancellationHandler {
            _ = try? await due.futureResult.get()
        } onCancel: {
            due.cancel()
        }
    }
}
