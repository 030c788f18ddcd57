@testable import Delivery
import Spool
import Testing

/// GCRA buckets driven by a manual clock: `now` is a parameter, so every case is exact
/// and instantaneous.
@Suite struct RateLimiterTests {
    /// Steps a manual clock in whole milliseconds from `start` for `duration` seconds,
    /// reserving whenever the limiter allows; returns the times (in ms) of the grants.
    static func drive(_ limiter: inout RateLimiter, _ keys: [(String, Rate)], startMs: Int = 0,
                      durationMs: Int) -> [Int] {
        var granted: [Int] = []
        var ms = startMs
        while ms < startMs + durationMs {
            let now = Double(ms) / 1000
            // Take every slot available at this instant (a burst), then move on.
            while limiter.reserve(keys, now: now) == nil { granted.append(ms) }
            ms += 1
        }
        return granted
    }

    /// The largest number of grants in any half-open window [t, t + width) ms.
    static func maxInWindow(_ times: [Int], widthMs: Int = 1000) -> Int {
        var best = 0
        var lo = 0
        for hi in times.indices {
            while times[hi] - times[lo] >= widthMs { lo += 1 }
            best = max(best, hi - lo + 1)
        }
        return best
    }

    @Test func burstIsOneUpToTenPerSecondAndATenthOfASecondAbove() {
        let l = RateLimiter()
        #expect(l.burst(Rate(count: 1, per: 60)) == 1)
        #expect(l.burst(Rate(count: 1, per: 1)) == 1)
        #expect(l.burst(Rate(count: 10, per: 1)) == 1)
        #expect(l.burst(Rate(count: 14, per: 1)) == 1)
        #expect(l.burst(Rate(count: 20, per: 1)) == 2)
        #expect(l.burst(Rate(count: 50, per: 1)) == 5)
        #expect(l.burst(Rate(count: 100, per: 1)) == 10)
        #expect(l.burst(Rate(count: 3600, per: 3600)) == 1)
    }

    @Test func tenPerSecondNeverExceedsTenInAnySecond() {
        var l = RateLimiter()
        let rate = Rate(count: 10, per: 1)
        let times = Self.drive(&l, [("domain:rate.test", rate)], durationMs: 10_000)
        #expect(times.first == 0, "the first message goes at once")
        #expect((99...100).contains(times.count), "10 s at 10/s: \(times.count) grants")
        #expect(Self.maxInWindow(times) == 10)
        // Evenly spaced: every gap is one interval (the 1 ms clock may add one tick).
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
        #expect(gaps.allSatisfy { (100...101).contains($0) }, "gaps \(Set(gaps).sorted())")
    }

    @Test func refusalSaysWhenToAskAgain() {
        var l = RateLimiter()
        let keys = [("k", Rate(count: 4, per: 1))]
        #expect(l.reserve(keys, now: 100) == nil)
        let retry = l.reserve(keys, now: 100.05)
        #expect(retry.map { abs($0 - 100.25) < 1e-9 } == true, "retry at \(String(describing: retry))")
        // Asking again at the advertised time succeeds.
        #expect(l.reserve(keys, now: 100.25) == nil)
        // `earliest` agrees and never answers before `now`.
        #expect(abs(l.earliest(keys, now: 100.3) - 100.5) < 1e-9)
        #expect(l.earliest(keys, now: 200) == 200)
        #expect(l.earliest([("unknown", Rate(count: 1, per: 1))], now: 5) == 5)
    }

    @Test func fastRatesBurstATenthOfASecondThenHoldTheAverage() {
        var l = RateLimiter()
        let rate = Rate(count: 100, per: 1)
        let times = Self.drive(&l, [("k", rate)], durationMs: 10_000)
        #expect(times.prefix(while: { $0 == 0 }).count == 10, "burst of 10 at t=0")
        // Long run: the average is the rate (the burst adds at most burst-1 once).
        #expect((995...1010).contains(times.count), "\(times.count) grants in 10 s")
        #expect(Self.maxInWindow(times) <= 109)
        // Past the first second, no window holds more than the rate.
        #expect(Self.maxInWindow(times.filter { $0 >= 1000 }) <= 101)
    }

    @Test func idleTimeDoesNotBankCredit() {
        var l = RateLimiter()
        let keys = [("k", Rate(count: 10, per: 1))]
        _ = Self.drive(&l, keys, durationMs: 1000)
        // An hour of silence, then a rush: still one at once (burst 1), then 10/s.
        let after = Self.drive(&l, keys, startMs: 3_601_000, durationMs: 1000)
        #expect(after.first == 3_601_000)
        #expect(after.count == 10)
        var fast = RateLimiter()
        let fastKeys = [("k", Rate(count: 100, per: 1))]
        _ = Self.drive(&fast, fastKeys, durationMs: 1000)
        let rush = Self.drive(&fast, fastKeys, startMs: 60_000, durationMs: 1)
        #expect(rush.count == 10, "burst capped at 10 after idling, got \(rush.count)")
    }

    @Test func allBucketsMustAgreeAndARefusalTakesNothing() {
        var l = RateLimiter()
        let global = ("*", Rate(count: 2, per: 1))
        let a = ("domain:a.test", Rate(count: 1, per: 10))
        let b = ("domain:b.test", Rate(count: 1, per: 10))
        #expect(l.reserve([global, a], now: 0) == nil)
        // a.test is exhausted for 10 s: refused, and the global bucket is not charged.
        #expect(l.reserve([global, a], now: 0.5) != nil)
        #expect(l.reserve([global, b], now: 0.5) == nil, "the global slot at 0.5 is still free")
        // Now the global bucket (2/s) is the one that refuses b's second message.
        let retry = l.reserve([global, ("domain:c.test", Rate(count: 100, per: 1))], now: 0.6)
        #expect(retry.map { abs($0 - 1.0) < 1e-9 } == true, "global next slot at 1.0, got \(String(describing: retry))")
        // The retry time is the latest of the refusing buckets.
        let both = l.reserve([global, a], now: 1.0)
        #expect(both.map { abs($0 - 10.0) < 1e-9 } == true, "a.test next slot at 10, got \(String(describing: both))")
    }

    @Test func bucketsAreIndependentByKey() {
        var l = RateLimiter()
        let rate = Rate(count: 1, per: 1)
        for i in 0..<50 {
            #expect(l.reserve([("domain:d\(i).test", rate)], now: 0) == nil)
        }
        #expect(l.reserve([("domain:d0.test", rate)], now: 0.1) != nil)
    }

    @Test func noKeysMeansNoLimit() {
        var l = RateLimiter()
        for _ in 0..<1000 { #expect(l.reserve([], now: 0) == nil) }
    }

    @Test func aChangedRateTakesEffectForTheSameKey() {
        var l = RateLimiter()
        #expect(l.reserve([("k", Rate(count: 1, per: 1))], now: 0) == nil)
        // tat is now 1.0; at 2/s the next slot is still governed by that tat.
        #expect(l.reserve([("k", Rate(count: 2, per: 1))], now: 1.0) == nil)
        let next = l.reserve([("k", Rate(count: 2, per: 1))], now: 1.1)
        #expect(next.map { abs($0 - 1.5) < 1e-9 } == true, "\(String(describing: next))")
    }

    @Test("Rate parses count/unit", arguments: [
        ("10/s", 10.0, 1.0), ("14/s", 14, 1), ("1000/h", 1000, 3600), ("30/m", 30, 60), ("5/min", 5, 60),
        ("2/d", 2, 86400), (" 7 / sec ", 7, 1), ("0.5/s", 0.5, 1), ("100/hour", 100, 3600),
    ])
    func rateParses(text: String, count: Double, per: Double) throws {
        let r = try #require(Rate(text))
        #expect(r.count == count)
        #expect(r.per == per)
        #expect(abs(r.interval - per / count) < 1e-12)
    }

    @Test("Rate refuses nonsense", arguments: ["", "10", "10/", "/s", "0/s", "-1/s", "ten/s", "10/y", "10/s/s", "nan/s", "inf/s"])
    func rateRefuses(text: String) {
        #expect(Rate(text) == nil, "\(text.debugDescription) should not parse")
    }
}
