import CampaignStore
import Foundation
import HeraldTestSupport
import Postgres
import Testing
@testable import Webhooks

/// The outbox and the endpoints against a real PostgreSQL (a fresh database per test).
@Suite(.serialized) struct WebhookStoreTests {
    static let sealer = SecretSealer(secret: Array(repeating: 7, count: 32))

    func event(_ tenant: TenantID, _ type: WebhookEventType, _ key: String) -> WebhookEvent {
        WebhookEvent(tenant: tenant, type: type, key: key, data: ["queue_id": .string(key)], occurredAt: Date())
    }

    @Test func eventsGoToSubscribedEnabledEndpointsOfTheirTenantOnce() async throws {
        try await StoreTestDB.with { db in
            let store = WebhookStore(db, sealer: Self.sealer)
            let (a, _) = try await StoreTestDB.tenant(db, "a")
            let (b, _) = try await StoreTestDB.tenant(db, "b")
            let (delivered, secret) = try await store.create(tenant: a.id, url: "https://hooks.example/a",
                                                             description: "", events: ["delivered"])
            #expect(secret.count == 64)
            let both = try await store.create(tenant: a.id, url: "https://hooks.example/b", description: "",
                                              events: ["delivered", "accepted"]).endpoint
            let paused = try await store.create(tenant: a.id, url: "https://hooks.example/c", description: "",
                                                events: ["delivered"]).endpoint
            _ = try await store.update(tenant: a.id, id: paused.id, .init(enabled: false))
            let stored = try await store.enqueue([
                event(a.id, .delivered, "k1"), event(a.id, .accepted, "k2"), event(a.id, .bounced, "k3"),
                event(b.id, .delivered, "k4"), event(a.id, .delivered, "k1"),
            ])
            // k3: nobody subscribed; k4: tenant b has no endpoint; the second k1 is a duplicate.
            #expect(stored == 2)
            #expect(try await store.enqueue([event(a.id, .delivered, "k1")]) == 0)
            #expect(try await store.backlog() == 3)
            #expect(try await store.deliveries(tenant: a.id, endpoint: delivered.id, before: nil, limit: 10)?.count == 1)
            #expect(try await store.deliveries(tenant: a.id, endpoint: both.id, before: nil, limit: 10)?.count == 2)
            #expect(try await store.deliveries(tenant: a.id, endpoint: paused.id, before: nil, limit: 10)?.count == 0)
            // Tenant b sees none of a's endpoints.
            #expect(try await store.endpoint(tenant: b.id, id: delivered.id) == nil)
            #expect(try await store.deliveries(tenant: b.id, endpoint: delivered.id, before: nil, limit: 10) == nil)
            #expect(try await store.delete(tenant: b.id, id: delivered.id) == false)
            #expect(try await store.update(tenant: b.id, id: delivered.id, .init(enabled: false)) == nil)
        }
    }

    @Test func badInputIsRefused() async throws {
        try await StoreTestDB.with { db in
            let store = WebhookStore(db, sealer: Self.sealer)
            let (a, _) = try await StoreTestDB.tenant(db, "a")
            for (url, events) in [("ftp://x.example/", ["delivered"]), ("https://user:pw@x.example/", ["delivered"]),
                                  ("not a url", ["delivered"]), ("https://x.example/", []),
                                  ("https://x.example/", ["sent"]), ("https://x.example/", ["test"])] {
                await #expect(throws: StoreError.self) {
                    _ = try await store.create(tenant: a.id, url: url, description: "", events: events)
                }
            }
        }
    }

    @Test func claimsRespectThePerEndpointLimitAndLeases() async throws {
        try await StoreTestDB.with { db in
            let store = WebhookStore(db, sealer: Self.sealer)
            let (a, _) = try await StoreTestDB.tenant(db, "a")
            let one = try await store.create(tenant: a.id, url: "https://one.example/", description: "",
                                             events: ["delivered"]).endpoint
            try await store.enqueue((0..<10).map { event(a.id, .delivered, "e\($0)") })
            let first = try await store.claim(limit: 100, perEndpoint: 3, busy: [:], lease: .seconds(60))
            #expect(first.count == 3)
            #expect(Set(first.map(\.endpointID)) == [one.id])
            // Two of them still in flight: one more slot.
            let second = try await store.claim(limit: 100, perEndpoint: 3, busy: [one.id: 2], lease: .seconds(60))
            #expect(second.count == 1)
            #expect(Set(first.map(\.deliveryID)).isDisjoint(with: second.map(\.deliveryID)))
            #expect(try store.secret(of: first[0]).count == 64)
        }
    }

    @Test func failuresBackOffThenDisableTheEndpointWithAReasonAndReenablingResumes() async throws {
        try await StoreTestDB.with { db in
            let store = WebhookStore(db, sealer: Self.sealer)
            let (a, _) = try await StoreTestDB.tenant(db, "a")
            let endpoint = try await store.create(tenant: a.id, url: "https://down.example/", description: "",
                                                  events: ["delivered"]).endpoint
            try await store.enqueue([event(a.id, .delivered, "e1")])
            let failed = WebhookStore.AttemptResult(status: 503, error: "HTTP 503", durationMs: 5)
            var job = try #require(try await store.claim(limit: 1, perEndpoint: 1, busy: [:], lease: .seconds(60)).first)
            // The first failure starts the streak; it is not yet older than disableAfter.
            #expect(try await store.recordFailure(job, failed, retryAfter: .seconds(60), giveUpAfter: .seconds(3600),
                                                  disableAfter: .seconds(3600)) == nil)
            #expect(try await store.claim(limit: 1, perEndpoint: 1, busy: [:], lease: .seconds(60)).isEmpty,
                    "not before its back-off ends")
            // The streak grows older than the disableAfter below; the back-off is made to end
            // (rather than waited for: a loaded machine would make any short wait a race).
            try await Task.sleep(for: .milliseconds(400))
            _ = try await db.execute("UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 second'")
            job = try #require(try await store.claim(limit: 1, perEndpoint: 1, busy: [:], lease: .seconds(60)).first)
            let reason = try await store.recordFailure(job, failed, retryAfter: .milliseconds(1), giveUpAfter: .seconds(3600),
                                                       disableAfter: .milliseconds(100))
            #expect(reason?.contains("HTTP 503") == true)
            let disabled = try #require(try await store.endpoint(tenant: a.id, id: endpoint.id))
            #expect(!disabled.enabled && disabled.disabledReason == reason && disabled.disabledAt != nil)
            // Disabled: nothing is claimed, new events are not stored for it, a test-send is refused.
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await store.claim(limit: 1, perEndpoint: 1, busy: [:], lease: .seconds(60)).isEmpty)
            #expect(try await store.enqueue([event(a.id, .delivered, "e2")]) == 0)
            await #expect(throws: StoreError.self) { _ = try await store.sendTest(tenant: a.id, id: endpoint.id) }
            // Re-enabled: the pending delivery is due at once, and a success ends the streak.
            let enabled = try #require(try await store.update(tenant: a.id, id: endpoint.id, .init(enabled: true)))
            #expect(enabled.enabled && enabled.disabledReason == nil && enabled.failingSince == nil)
            job = try #require(try await store.claim(limit: 1, perEndpoint: 1, busy: [:], lease: .seconds(60)).first)
            try await store.recordSuccess(job, .init(status: 200, error: nil, durationMs: 3))
            let rows = try #require(try await store.deliveries(tenant: a.id, endpoint: endpoint.id, before: nil, limit: 10))
            #expect(rows.map(\.state) == [.delivered])
            #expect(rows.first?.attempts == 3)
            #expect(try await store.backlog() == 0)
        }
    }
}

/// Events that come from a database change commit in that change's transaction.
@Suite(.serialized) struct WebhookTransactionalSourcesTests {
    @Test func opensClicksUnsubscribesAndReportsMakeEvents() async throws {
        try await CampaignFixture.with(count: 20) { f in
            let store = WebhookStore(f.db, sealer: WebhookStoreTests.sealer)
            _ = try await store.create(tenant: f.tenant, url: "https://app.example/", description: "", events: [
                "opened", "clicked", "unsubscribed", "bounced", "complained"])
            let campaign = try await f.createCampaign().id
            try await f.db.execute("UPDATE campaigns SET track_opens = true, track_clicks = true WHERE id = $1",
                                   [String(campaign)])
            let subscriber = Int64(try await f.int("SELECT min(id) FROM subscribers WHERE status = 'active'"))
            let tracking = TrackingStore(f.db)
            #expect(try await tracking.record(.open, tenant: f.tenant, campaign: campaign, subscriber: subscriber, url: nil))
            #expect(try await tracking.record(.click, tenant: f.tenant, campaign: campaign, subscriber: subscriber,
                                              url: "https://example.org/a"))
            // Another tenant's campaign: nothing recorded, no event.
            #expect(try await !tracking.record(.open, tenant: TenantID(999), campaign: campaign, subscriber: subscriber,
                                               url: nil))
            let suppressions = SuppressionStore(f.db)
            _ = try await suppressions.unsubscribe(tenant: f.tenant, subscriberID: subscriber, campaignID: campaign)
            // A repeat changes nothing and sends nothing.
            _ = try await suppressions.unsubscribe(tenant: f.tenant, subscriberID: subscriber, campaignID: campaign)
            try await f.db.execute("""
                INSERT INTO campaign_recipients (tenant_id, campaign_id, subscriber_id, state, queue_id)
                VALUES ($1, $2, $3, 'sent', 'Q1')
                """, [f.tenant.parameter, String(campaign), String(subscriber)])
            let report = IncomingBounceEvent(type: .complaint, campaignID: campaign, subscriberID: subscriber,
                                             category: "abuse", hard: false, source: "S1", seq: 0)
            _ = try await BounceStore(f.db).record([report], softBounces: SoftBounceLimit(limit: 3, days: 7))
            // The same report processed twice: one event.
            _ = try await BounceStore(f.db).record([report], softBounces: SoftBounceLimit(limit: 3, days: 7))
            let rows = try await f.db.query("SELECT type, data FROM webhook_events ORDER BY id")
            #expect(rows.map { $0[0] } == ["opened", "clicked", "unsubscribed", "complained"])
            #expect(rows[1][1]?.contains(#""url":"https://example.org/a""#) == true)
            #expect(rows[2][1]?.contains(#""subscriber_id":\#(subscriber)"#) == true)
            #expect(try await store.backlog() == 4)
        }
    }
}
