import Testing
@testable import Endpoints

/// Replies go out in the order they were asked for, whatever order they are filled in.
@Suite struct ReplyQueueTests {
    @Test func everyFillOrderOfFourGivesRequestOrder() {
        func permutations(_ xs: [Int]) -> [[Int]] {
            xs.count <= 1 ? [xs] : xs.indices.flatMap { i in
                permutations(Array(xs[..<i] + xs[(i + 1)...])).map { [xs[i]] + $0 }
            }
        }
        for order in permutations([0, 1, 2, 3]) {
            var q = ReplyQueue<String>()
            let tickets = (0..<4).map { _ in q.owe() }
            var out: [String] = []
            for i in order { out += q.fill(tickets[i], with: "r\(i)") }
            #expect(out == ["r0", "r1", "r2", "r3"], "filled in order \(order)")
            #expect(q.isEmpty)
        }
    }

    @Test func aFilledPlaceWaitsForEveryEarlierOne() {
        var q = ReplyQueue<Int>()
        let a = q.owe(), b = q.owe(), c = q.owe()
        #expect(q.fill(c, with: 3) == [])
        #expect(q.fill(b, with: 2) == [])
        #expect(q.count == 3)
        #expect(q.fill(a, with: 1) == [1, 2, 3])
        #expect(q.isEmpty)
    }

    @Test func aTicketFilledTwiceOrNeverGivenChangesNothing() {
        var q = ReplyQueue<Int>()
        let a = q.owe(), b = q.owe()
        #expect(q.fill(b, with: 2) == [])
        #expect(q.fill(b, with: 20) == [], "already filled")
        #expect(q.fill(b + 1, with: 9) == [], "never given")
        #expect(q.fill(-1, with: 9) == [], "never given")
        #expect(q.fill(a, with: 1) == [1, 2])
        #expect(q.fill(a, with: 10) == [], "already gone out")
    }

    /// Tickets keep counting while the storage is compacted under a long
    /// pipelined burst (places gone out at the front, others still owed).
    @Test func ticketsStayValidAcrossCompaction() {
        var q = ReplyQueue<Int>()
        var tickets = (0..<100).map { _ in q.owe() }
        var out: [Int] = []
        for n in 0..<80 { out += q.fill(tickets[n], with: n) }
        #expect(out == Array(0..<80))
        #expect(q.count == 20)
        tickets += (100..<300).map { _ in q.owe() }
        for n in (80..<300).reversed() { out += q.fill(tickets[n], with: n) }
        #expect(out == Array(0..<300))
        #expect(q.isEmpty)
        #expect(q.fill(q.owe(), with: 300) == [300], "and afterwards")
    }
}
