@testable import Delivery
import Foundation
import Metrics
import MetricsTestKit
import Testing

/// Every delivery-log entry has its metric counterpart.
@Suite(.serialized) struct DeliveryMetricsTests {
    // The metrics system can be bootstrapped once per process; this is the only test
    // in the package that does it.
    static let metrics: TestMetrics = {
        let m = TestMetrics()
        MetricsSystem.bootstrap(m)
        return m
    }()

    static func entry(_ result: String, code: Int? = nil, enhanced: String? = nil, time: Date = Date()) -> DeliveryLog.Entry {
        .init(time: time, queueId: "X", recipient: "a@b.test", domain: "b.test", mxHost: nil, ip: nil, tls: false,
              result: result, code: code, enhanced: enhanced, reply: nil, attempt: 1, nextAttempt: nil, tenant: nil,
              campaign: nil, durationMs: 12)
    }

    @Test func logEntriesAreCounted() throws {
        let metrics = Self.metrics
        let log = DeliveryLog(path: nil, maxBytes: 1 << 20)
        let delivered2 = [("result", "delivered"), ("class", "2.0")]
        let before = (try? metrics.expectCounter(DeliveryMetrics.attemptsLabel, delivered2).totalValue) ?? 0
        log.write(Self.entry("delivered", code: 250, enhanced: "2.0.0"))
        log.write(Self.entry("delivered", code: 250))
        log.write(Self.entry("deferred", code: 450, enhanced: "4.2.1"))
        let delivered = try metrics.expectCounter(DeliveryMetrics.attemptsLabel, delivered2)
        #expect(delivered.totalValue - before == 2)
        let deferred = try metrics.expectCounter(DeliveryMetrics.attemptsLabel, [("result", "deferred"), ("class", "4.2")])
        #expect(deferred.totalValue >= 1)
        let timer = try metrics.expectTimer(DeliveryMetrics.durationLabel, [("result", "delivered")])
        #expect(timer.lastValue == 12_000_000)
    }

    @Test(arguments: [
        (250, "2.0.0", "2.0"), (550, "5.1.1", "5.1"), (451, "4.4.2", "4.4"), (554, "5.7.26", "5.7"),
        (250, nil, "2.0"), (421, nil, "4.0"), (550, "junk", "5.0"), (550, "5.1", "5.0"), (550, "3.1.1", "5.0"),
    ] as [(Int, String?, String)])
    func classOfTheReply(code: Int, enhanced: String?, expected: String) {
        #expect(DeliveryMetrics.codeClass(Self.entry("failed", code: code, enhanced: enhanced)) == expected)
    }

    @Test func noReplyIsClassNone() {
        #expect(DeliveryMetrics.codeClass(Self.entry("cancelled")) == "none")
        #expect(DeliveryMetrics.codeClass(Self.entry("held", code: 99)) == "none")
    }

    @Test func latencyIsRecordedForFinalOutcomesOnly() throws {
        let metrics = Self.metrics
        let now = Date()
        DeliveryMetrics.recordLatency(Self.entry("delivered", time: now), arrival: now.addingTimeInterval(-90))
        let timer = try metrics.expectTimer(DeliveryMetrics.latencyLabel, [("result", "delivered")])
        #expect(abs((timer.lastValue ?? 0) - 90_000_000_000) < 1_000_000)
        DeliveryMetrics.recordLatency(Self.entry("deferred", time: now), arrival: now.addingTimeInterval(-5))
        #expect((try? metrics.expectTimer(DeliveryMetrics.latencyLabel, [("result", "deferred")])) == nil)
    }
}
