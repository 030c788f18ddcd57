@testable import Delivery
import Foundation
import Metrics
import MetricsTestKit
import Testing

/// Every delivery-log entry has its metric counterpart.
@Suite struct DeliveryMetricsTests {
    // The metrics system can be bootstrapped once per process; this is the only test
    // in the package that does it.
    static let metrics: TestMetrics = {
        let m = TestMetrics()
        MetricsSystem.bootstrap(m)
        return m
    }()

    @Test func logEntriesAreCounted() throws {
        let metrics = Self.metrics
        let log = DeliveryLog(path: nil, maxBytes: 1 << 20)
        func entry(_ result: String) -> DeliveryLog.Entry {
            .init(time: Date(), queueId: "X", recipient: "a@b.test", domain: "b.test", mxHost: nil, ip: nil, tls: false,
                  result: result, code: nil, enhanced: nil, reply: nil, attempt: 1, nextAttempt: nil, tenant: nil,
                  campaign: nil, durationMs: 12)
        }
        let before = (try? metrics.expectCounter(DeliveryMetrics.attemptsLabel, [("result", "delivered")]).totalValue) ?? 0
        log.write(entry("delivered"))
        log.write(entry("delivered"))
        log.write(entry("deferred"))
        let delivered = try metrics.expectCounter(DeliveryMetrics.attemptsLabel, [("result", "delivered")])
        #expect(delivered.totalValue - before == 2)
        let deferred = try metrics.expectCounter(DeliveryMetrics.attemptsLabel, [("result", "deferred")])
        #expect(deferred.totalValue >= 1)
        let timer = try metrics.expectTimer(DeliveryMetrics.durationLabel, [("result", "delivered")])
        #expect(timer.lastValue == 12_000_000)
    }
}
