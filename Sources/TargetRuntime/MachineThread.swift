#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
import NIOCore
import SessionCore
import Synchronization

/// Runs the session machine's steps on a thread of their own, each with a
/// deadline. Patterns are Swift `Regex`es, matched by a backtracking engine:
/// a pattern with nested quantifiers such as `(a+)+$` takes time exponential
/// in the line's length on a line that almost matches (measured: 18 `a`s and
/// a `b`, 42 s; each further two characters ×8), and that engine can be
/// neither interrupted nor cancelled. Rejecting such patterns when the spec is
/// read cannot be complete (`(a|a)+$`, `(.*a){12}` stall as well), so the
/// bound is time: a step that does not return within its deadline is
/// abandoned, still running, and the run ends as an invalid spec (exit 2,
/// the pattern named); the process exits soon after, and the thread with it.
final class MachineThread: Sendable {
    private let queue = DispatchQueue(label: "vtarget.session-machine")
    /// Where each step's deadline is timed: a deadline cancelled when its
    /// step returns leaves nothing behind, where `asyncAfter` left a
    /// dispatch timer per event pending for its whole 3 s (libdispatch then
    /// wakes once a second for each).
    private let deadlines: any EventLoop
    /// A step overran: the queue is busy with it for good.
    private let stuck = Mutex(false)

    init(deadlines: any EventLoop) {
        self.deadlines = deadlines
    }

    /// How long one event may take to handle: the matching of one chunk of
    /// serial output against every armed pattern, normally microseconds.
    static let stepDeadlineSeconds = 3.0

    var isStuck: Bool { stuck.withLock { $0 } }

    typealias Step = (SessionMachine, [SessionAction])

    /// The first of the step's result and its deadline resumes the caller.
    private final class Answer: Sendable {
        private let continuation: Mutex<CheckedContinuation<Step?, Never>?>
        init(_ c: CheckedContinuation<Step?, Never>) { continuation = Mutex(c) }
        func give(_ r: Step?) {
            continuation.withLock { c in
                c?.resume(returning: r)
                c = nil
            }
        }
    }

    /// The machine after `event`, and the actions it said; nil when the step
    /// took longer than `seconds` (or an earlier one did): the caller's
    /// machine is then as it was before the event.
    func handle(_ machine: SessionMachine, _ event: SessionEvent, now: Double,
                seconds: Double = stepDeadlineSeconds) async -> Step? {
        if isStuck { return nil }
        let result: Step? = await withCheckedContinuation { continuation in
            let answer = Answer(continuation)
            let deadline = deadlines.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) { answer.give(nil) }
            queue.async {
                var m = machine
                let actions = m.handle(event, now: now)
                answer.give((m, actions))
                deadline.cancel()
            }
        }
        if result == nil { stuck.withLock { $0 = true } }
        return result
    }
}
