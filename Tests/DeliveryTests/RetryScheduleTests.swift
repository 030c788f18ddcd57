@testable import Delivery
import Foundation
import Testing

@Suite struct RetryScheduleTests {
    @Test("Postfix-like defaults: 5 min doubling to a cap of 4000 s, 5 days lifetime", arguments: [
        (1, 300.0), (2, 600), (3, 1200), (4, 2400), (5, 4000), (6, 4000), (20, 4000), (1000, 4000),
    ])
    func defaultTable(attempt: Int, wait: Double) {
        let s = RetrySchedule()
        #expect(s.delay(afterAttempt: attempt, random: 0) == wait)
    }

    @Test func defaults() {
        let s = RetrySchedule()
        #expect(s.minimal == 300)
        #expect(s.maximal == 4000)
        #expect(s.maxLifetime == 5 * 86400)
        #expect(s.jitter == 0.1)
    }

    @Test func jitterIsPlusOrMinusTenPercent() {
        let s = RetrySchedule()
        #expect(s.delay(afterAttempt: 1, random: -1) == 270)
        #expect(s.delay(afterAttempt: 1, random: 1) == 330)
        #expect(s.delay(afterAttempt: 9, random: 1) == 4400)
        // Random draws stay in the band and are not all the same (retries spread out).
        var seen = Set<Double>()
        for _ in 0..<200 {
            let d = s.delay(afterAttempt: 2)
            #expect(d >= 540 && d <= 660, "\(d)")
            seen.insert(d)
        }
        #expect(seen.count > 10)
    }

    @Test func attemptZeroAndNegativeCountAsTheFirst() {
        let s = RetrySchedule()
        #expect(s.delay(afterAttempt: 0, random: 0) == 300)
        #expect(s.delay(afterAttempt: -3, random: 0) == 300)
    }

    @Test func configuredSchedule() {
        let s = RetrySchedule(minimal: 1, maximal: 10, maxLifetime: 3, jitter: 0)
        #expect((1...6).map { s.delay(afterAttempt: $0) } == [1, 2, 4, 8, 10, 10])
    }

    @Test func neverNegative() {
        let s = RetrySchedule(minimal: 10, maximal: 100, jitter: 2)
        #expect(s.delay(afterAttempt: 1, random: -1) == 0)
    }
}
