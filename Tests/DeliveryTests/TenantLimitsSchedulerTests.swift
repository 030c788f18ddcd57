import Foundation
import SMTPClient
import SMTPCore
import Spool
import Testing

@testable import Delivery

/// Tenant limits in the queue manager's decisions, with hand-picked times: a tenant's
/// rate is a pacing stage, its connections are capped with its message parked (not
/// blocking the queue), `tenant:NAME` throttles find database tenants (tagged by id),
/// and one tenant's limits never hold back another's mail.
@Suite struct TenantLimitsSchedulerTests {
    typealias T = DeliverySchedulerTests
    static let t0 = T.t0

    /// Recipient addresses of the attempts, sorted.
    static func recipients(_ attempts: [DeliveryScheduler.Attempt]) -> [String] {
        attempts.flatMap { a in a.indices.map { a.envelope.recipients[$0].address } }.sorted()
    }

    @Test("a tenant's rate lets one message go per slot; the others wait for theirs, in order")
    func tenantRatePaces() {
        var s = DeliveryScheduler(config: T.config { $0.initialWindow = 10 })
        s.setTenants(["7": TenantDeliveryLimits(name: "beta", rate: Rate("1/m"))], now: Self.t0)
        for i in 1...3 { s.add(T.envelope(["b\(i)@dest.test"], tenant: "7"), now: Self.t0) }
        let first = s.dispatch(now: Self.t0)
        #expect(Self.recipients(first.attempts) == ["b1@dest.test"])
        #expect(first.wakeAt == Self.t0.addingTimeInterval(60), "the next slot is a minute later")
        #expect(s.dispatch(now: Self.t0.addingTimeInterval(59)).attempts.isEmpty)
        #expect(Self.recipients(s.dispatch(now: Self.t0.addingTimeInterval(60)).attempts) == ["b2@dest.test"])
        #expect(Self.recipients(s.dispatch(now: Self.t0.addingTimeInterval(120)).attempts) == ["b3@dest.test"])
    }

    @Test("tenant B's rate does not hold back tenant A's mail to the same destination")
    func otherTenantsGoOn() {
        var s = DeliveryScheduler(config: T.config { $0.initialWindow = 10 })
        s.setTenants(["7": TenantDeliveryLimits(name: "beta", rate: Rate("1/h")), "3": TenantDeliveryLimits(name: "alpha")],
                     now: Self.t0)
        // B's mail first, then A's, all to one destination.
        for i in 1...3 { s.add(T.envelope(["b\(i)@dest.test"], tenant: "7"), now: Self.t0) }
        for i in 1...3 { s.add(T.envelope(["a\(i)@dest.test"], tenant: "3"), now: Self.t0) }
        let started = Self.recipients(s.dispatch(now: Self.t0).attempts)
        #expect(started == ["a1@dest.test", "a2@dest.test", "a3@dest.test", "b1@dest.test"])
        #expect(s.paced["tenant:7"]?.todo.count == 2, "B's other two wait in B's pacing queue, not in the destination's")
    }

    @Test("a tenant at its connection limit is parked; each of its attempts that ends brings one back")
    func tenantConnections() {
        var s = DeliveryScheduler(config: T.config { $0.initialWindow = 10 })
        s.setTenants(["7": TenantDeliveryLimits(name: "beta", maxConnections: 2)], now: Self.t0)
        for i in 1...4 { s.add(T.envelope(["b\(i)@dest.test"], tenant: "7"), now: Self.t0) }
        s.add(T.envelope(["a1@dest.test"], tenant: "3"), now: Self.t0)
        let first = s.dispatch(now: Self.t0).attempts
        #expect(Self.recipients(first) == ["a1@dest.test", "b1@dest.test", "b2@dest.test"],
                "two of B's, and A's behind B's parked ones")
        #expect(s.activeByTenant["7"] == 2)
        #expect(s.waitingForTenant["7"]?.count == 2)
        let b1 = first.first { $0.envelope.recipients[0].address == "b1@dest.test" }!
        _ = s.completed(b1, result: T.result([.delivered(T.ok)]), began: Self.t0, now: Self.t0)
        #expect(Self.recipients(s.dispatch(now: Self.t0).attempts) == ["b3@dest.test"], "one freed, one more")
        #expect(s.dispatch(now: Self.t0).attempts.isEmpty)
        // Raising the limit brings the rest back at once.
        s.setTenants(["7": TenantDeliveryLimits(name: "beta", maxConnections: 5)], now: Self.t0)
        #expect(Self.recipients(s.dispatch(now: Self.t0).attempts) == ["b4@dest.test"])
    }

    @Test("[[throttle]] tenant:NAME matches a database tenant's mail (tagged with its id) by name, ignoring case")
    func throttleByName() {
        let config = T.config {
            $0.initialWindow = 10
            $0.throttles = [ThrottleRule(target: .tenant("Beta"), rate: Rate("1/h"), connections: nil),
                            ThrottleRule(target: .tenant("cfg"), rate: nil, connections: 1)]
        }
        var s = DeliveryScheduler(config: config)
        s.setTenants(["7": TenantDeliveryLimits(name: "beta"), "3": TenantDeliveryLimits(name: "alpha")], now: Self.t0)
        #expect(s.tenantRate("7") == Rate("1/h"))
        #expect(s.tenantRate("3") == nil)
        #expect(s.tenantRate("Beta") == Rate("1/h"), "a config-file tenant is tagged by its name")
        #expect(s.tenantConnectionLimit("cfg") == 1)
        for i in 1...2 { s.add(T.envelope(["b\(i)@dest.test"], tenant: "7"), now: Self.t0) }
        for i in 1...2 { s.add(T.envelope(["a\(i)@dest.test"], tenant: "3"), now: Self.t0) }
        #expect(Self.recipients(s.dispatch(now: Self.t0).attempts) == ["a1@dest.test", "a2@dest.test", "b1@dest.test"])
    }

    @Test("the slower of a tenant's own rate and a matching throttle applies; removing the limit lets the mail go")
    func slowestRateAndRemoval() {
        var s = DeliveryScheduler(config: T.config {
            $0.initialWindow = 10
            $0.throttles = [ThrottleRule(target: .tenant("beta"), rate: Rate("10/s"), connections: nil)]
        })
        s.setTenants(["7": TenantDeliveryLimits(name: "beta", rate: Rate("1/h"))], now: Self.t0)
        #expect(s.tenantRate("7") == Rate("1/h"))
        for i in 1...3 { s.add(T.envelope(["b\(i)@dest.test"], tenant: "7"), now: Self.t0) }
        #expect(Self.recipients(s.dispatch(now: Self.t0).attempts) == ["b1@dest.test"])
        // The operator lifts the tenant's own rate: the throttle's 10/s remains (burst 1).
        s.setTenants(["7": TenantDeliveryLimits(name: "beta")], now: Self.t0)
        #expect(Self.recipients(s.dispatch(now: Self.t0.addingTimeInterval(1)).attempts) == ["b2@dest.test"])
        #expect(Self.recipients(s.dispatch(now: Self.t0.addingTimeInterval(1.1)).attempts) == ["b3@dest.test"])
    }

    @Test("a campaign's pace and its tenant's rate are two stages: a message waits for a slot of each")
    func campaignThenTenant() {
        var s = DeliveryScheduler(config: T.config { $0.initialWindow = 10 })
        s.setTenants(["7": TenantDeliveryLimits(name: "beta", rate: Rate("1/m"))], now: Self.t0)
        let policy = SendPolicy(rate: Rate("1/s"), rateKey: "campaign:1")
        for i in 1...2 {
            s.add(T.envelope(["c\(i)@dest.test"], tenant: "7", campaign: "1", sendPolicy: policy), now: Self.t0)
        }
        #expect(Self.recipients(s.dispatch(now: Self.t0).attempts) == ["c1@dest.test"])
        // The campaign has a slot a second later; the tenant not until a minute.
        let early = s.dispatch(now: Self.t0.addingTimeInterval(1))
        #expect(early.attempts.isEmpty)
        #expect(s.paced["tenant:7"]?.todo.count == 1, "past the campaign's stage, waiting at the tenant's")
        #expect(Self.recipients(s.dispatch(now: Self.t0.addingTimeInterval(60)).attempts) == ["c2@dest.test"])
    }
}
