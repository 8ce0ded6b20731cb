/// The replies one QMP client is owed, in the order it asked: a place is
/// taken when a command arrives and filled when its answer comes, in any
/// order (QEMU's, the query cache's, the proxy's own); a filled place at the
/// front is due, and goes out with every filled place behind it.
struct ReplyQueue<Reply> {
    private var slots: [Reply?] = []
    /// Index in `slots` of the oldest place still owed.
    private var head = 0
    /// The ticket of `slots[head]`.
    private var first = 0

    var isEmpty: Bool { head == slots.count }
    /// Places taken and not yet gone out.
    var count: Int { slots.count - head }

    /// A new place, behind every other; its ticket fills it.
    mutating func owe() -> Int {
        slots.append(nil)
        return first + slots.count - 1 - head
    }

    /// Fills place `ticket` and returns what is now due, in order (nothing
    /// when an earlier place is still owed). A ticket not owed (already
    /// filled, or never given) changes nothing.
    mutating func fill(_ ticket: Int, with reply: Reply) -> [Reply] {
        let i = head + ticket - first
        guard i >= head, i < slots.count, case .none = slots[i] else { return [] }
        slots[i] = reply
        var due: [Reply] = []
        while head < slots.count, let r = slots[head] {
            due.append(r)
            slots[head] = nil
            head += 1
            first += 1
        }
        if head == slots.count {
            // A long pipelined burst's storage is not kept for an idle client.
            slots.removeAll(keepingCapacity: slots.count <= 16)
            head = 0
        } else if head >= 64, head * 2 >= slots.count {
            slots.removeFirst(head)
            head = 0
        }
        return due
    }
}
