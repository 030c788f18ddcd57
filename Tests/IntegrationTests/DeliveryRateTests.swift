import Foundation
import HeraldTestSupport
import Testing

/// Throttle accuracy: a domain limited to N = 10 messages/s receives 100 messages at
/// that pace, as the receiving sink measures it: no 1-second window holds more than N
/// arrivals (RateLimiter.burst is 1 for rates up to 10/s: no burst is allowed), and the
/// average is within 5 % of N. Another domain is not slowed down by the limit.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct DeliveryRate {
        static let n = 10

        /// The most arrivals in any half-open window [t, t + `window`) starting at an arrival.
        ///
        /// The window is 0.9 s, not 1 s: the limiter spaces a domain's dispatches exactly
        /// 1/N s apart, so N + 1 of them span exactly 1 s, and a dispatch that runs a few
        /// milliseconds late (or a faster trip to the sink) would put N + 1 arrivals inside
        /// a 1 s window without the rate being exceeded. N + 1 arrivals within 0.9 s still
        /// mean a rate over N/s by more than 10 %, which any bypass of the throttle gives.
        static func maxPerSecond(_ times: [Double], window: Double = 0.9) -> (count: Int, at: Double) {
            var best = (0, 0.0)
            var lo = 0
            for hi in times.indices {
                while times[hi] - times[lo] >= window { lo += 1 }
                if hi - lo + 1 > best.0 { best = (hi - lo + 1, times[lo]) }
            }
            return best
        }

        @Test("rate.test at 10/s: 100 messages, never more than 10 in 0.9 s, average within 5 %")
        func throttleAccuracy() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            // Each domain on a route of its own: two destinations (a route is one queue).
            let toml = [
                DeliveryIT.route("rate.test", port: sink.port),
                DeliveryIT.route("unlimited.test", port: sink.port),
                "[[throttle]]\nmatch = \"rate.test\"\nrate = \"\(Self.n)/s\"",
            ]
            try await HeraldProcess.with(DeliveryIT.options(toml: toml)) { herald in
                var mails = (0..<100).map { DeliveryIT.mail("rate-\($0)", to: ["user\($0)@rate.test"], bodyLines: 2) }
                mails += (0..<20).map { DeliveryIT.mail("free-\($0)", to: ["user\($0)@unlimited.test"], bodyLines: 2) }
                let submitStart = Date()
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), mails)
                let submitTime = Date().timeIntervalSince(submitStart)
                #expect(ids.count == 120)
                let got = await sink.waitForMessages(120, timeout: 30)
                #expect(got == 120, "\(herald.diagnostics())")
                let index = sink.index()
                let times = index.filter { $0.rcpts.first?.hasSuffix("@rate.test") == true }.map(\.time).sorted()
                let free = index.filter { $0.rcpts.first?.hasSuffix("@unlimited.test") == true }.map(\.time).sorted()
                #expect(times.count == 100)
                guard times.count == 100, let first = times.first, let last = times.last else { return }
                let (peak, at) = Self.maxPerSecond(times)
                let average = Double(times.count - 1) / (last - first)
                var perSecond: [Int] = []
                for t in times { let s = Int(t - first); while perSecond.count <= s { perSecond.append(0) }; perSecond[s] += 1 }
                let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
                func f(_ v: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", v) }
                print("throttle accuracy: N=\(Self.n)/s, 100 messages in \(f(last - first)) s, average \(f(average))/s "
                      + "(\(f((average / Double(Self.n) - 1) * 100, 2)) % off), peak \(peak) in a 0.9 s window "
                      + "(at +\(f(at - first)) s), gaps \(f((gaps.min() ?? 0) * 1000, 1))–\(f((gaps.max() ?? 0) * 1000, 1)) ms; "
                      + "per second from the first: \(perSecond.map(String.init).joined(separator: ",")); "
                      + "submission took \(f(submitTime, 2)) s")
                #expect(peak <= Self.n, "\(peak) arrivals within one second from +\(at - first) s")
                #expect(abs(average - Double(Self.n)) <= 0.05 * Double(Self.n), "average \(average)/s")
                // The unlimited domain is not paced by rate.test's bucket.
                if let f = free.last, let f0 = free.first {
                    #expect(f - f0 < 2, "unlimited.test took \(f - f0) s for 20 messages")
                }
            }
        }

        /// `[[route]] rate` is a provider limit: every domain behind the route shares it.
        @Test("a route's rate covers all its domains together")
        func routeRate() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            var route = DeliveryIT.route("*.provider.test", port: sink.port)
            route += "\nrate = \"5/s\"\nconnections = 2"
            try await HeraldProcess.with(DeliveryIT.options(toml: [route])) { herald in
                let mails = (0..<15).map { DeliveryIT.mail("p-\($0)", to: ["u\($0)@d\($0 % 3).provider.test"], bodyLines: 2) }
                try await DeliveryIT.submitAccepted(port: herald.port(), mails)
                #expect(await sink.waitForMessages(15, timeout: 15) == 15)
                let times = sink.index().map(\.time).sorted()
                let peak = DeliveryRate.maxPerSecond(times).count
                let span = (times.last ?? 0) - (times.first ?? 0)
                print("route rate 5/s over 3 domains: 15 messages in \(String(format: "%.2f", span)) s, peak \(peak) in a second")
                #expect(peak <= 5)
                #expect(span >= 2.5, "15 messages at 5/s take about 2.8 s, took \(span) s")
            }
        }

        /// Domains behind one smart-host route share one destination queue
        /// (DeliveryScheduler.destination(ofDomain:)), except a domain with a throttle of its
        /// own, which keeps its own queue. So a domain throttle inside a route (1) does not
        /// hold back the route's other domains, and (2) is charged for every recipient in
        /// that domain, whichever recipient comes first in the message.
        @Test("a domain throttle inside a shared route: no head-of-line blocking, no bypass")
        func throttleInsideSharedRoute() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let toml = [DeliveryIT.route("*.shared.test", port: sink.port),
                        "[[throttle]]\nmatch = \"slow.shared.test\"\nrate = \"5/s\""]
            try await HeraldProcess.with(DeliveryIT.options(toml: toml)) { herald in
                // 10 messages for the limited domain (2 s at 5/s), then one for the other.
                var mails = (0..<10).map { DeliveryIT.mail("hol-\($0)", to: ["u\($0)@slow.shared.test"], bodyLines: 2) }
                mails.append(DeliveryIT.mail("hol-fast", to: ["u@fast.shared.test"], bodyLines: 2))
                // 10 messages whose first recipient is in the other domain of the route.
                mails += (0..<10).map {
                    DeliveryIT.mail("bypass-\($0)", to: ["v\($0)@fast.shared.test", "w\($0)@slow.shared.test"], bodyLines: 2)
                }
                let submitted = Date().timeIntervalSince1970
                try await DeliveryIT.submitAccepted(port: herald.port(), mails)
                // 10 + 1 + 10 fast + 10 slow transactions (a throttled domain is its own destination).
                await DeliveryIT.waitUntil(timeout: 15) { sink.index().count >= 31 }
                let index = sink.index()
                let fast = index.first { $0.rcpts == ["u@fast.shared.test"] }
                let slowTimes = index.filter { $0.rcpts.contains { $0.hasSuffix("@slow.shared.test") } }.map(\.time).sorted()
                let peak = DeliveryRate.maxPerSecond(slowTimes).count
                print("shared route: the other domain's message waited \(fast.map { String(format: "%.2f", $0.time - submitted) } ?? "?") s; "
                      + "slow.shared.test (5/s) peak \(peak) in a second over \(slowTimes.count) transactions")
                #expect(fast.map { $0.time - submitted < 1.0 } == true, "fast.shared.test waited behind slow.shared.test")
                #expect(peak <= 5, "slow.shared.test got \(peak) messages within one second at 5/s")
                #expect(slowTimes.count == 20, "every slow.shared.test recipient went through its own queue")
            }
        }
    }
}
