import Foundation
import Spool

/// Generic cell rate algorithm (GCRA) buckets keyed by name. A bucket at rate r allows
/// one message every 1/r seconds with a burst of `burst` messages; `reserve` answers
/// either "go" (and takes the slot) or the earliest time to ask again. Pure logic: the
/// caller passes `now`, so tests drive a manual clock.
public struct RateLimiter: Sendable {
    struct Bucket: Sendable {
        var rate: Rate
        var burst: Double
        /// The theoretical arrival time of the next conforming message.
        var tat: Double
    }

    private var buckets: [String: Bucket] = [:]

    public init() {}

    /// Earliest time at which all of `keys` would accept one message (≤ now means now).
    public func earliest(_ keys: [(String, Rate)], now: Double) -> Double {
        var t = now
        for (key, rate) in keys {
            let tau = rate.interval * (max(1, burst(rate)) - 1)
            if let b = buckets[key] {
                t = max(t, b.tat - tau)
            }
        }
        return t
    }

    /// Takes one slot in every bucket if all allow it now; otherwise takes nothing and
    /// returns the time to retry.
    public mutating func reserve(_ keys: [(String, Rate)], now: Double) -> Double? {
        let at = earliest(keys, now: now)
        if at > now { return at }
        for (key, rate) in keys {
            var b = buckets[key] ?? Bucket(rate: rate, burst: burst(rate), tat: now)
            b.rate = rate
            b.tat = max(b.tat, now) + rate.interval
            buckets[key] = b
        }
        return nil
    }

    /// Drops a bucket (its rate changed or is gone): the next message starts it afresh.
    public mutating func forget(_ key: String) {
        buckets[key] = nil
    }

    /// Rates under 1/s get no burst; faster rates may burst a tenth of a second's worth,
    /// so that timer granularity does not lower the achieved rate.
    func burst(_ rate: Rate) -> Double {
        max(1, (rate.count / rate.per) * 0.1).rounded(.down)
    }
}
