import Foundation
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Spool
import Testing

@testable import Campaigns
@testable import CampaignStore
@testable import HTTPAPI

/// schedule (and ``CampaignScheduler``), duplicate, test, failures, retry-failed, and what
/// pause/resume/cancel do to the spool.
@Suite("Campaign actions", .serialized, .enabled(if: PostgresServer.isAvailable))
struct CampaignActionsTests {
    /// The campaign's envelopes in one spool queue.
    static func spooled(_ f: CampaignFixture, campaign: Int, in queue: SpoolQueue) throws -> [Envelope] {
        try f.spool.enumerate(queue).map { try f.spool.loadEnvelope($0, in: queue) }
            .filter { $0.campaign == String(campaign) }
    }

    /// Creates a campaign, sends it and waits for its expansion.
    static func expanded(_ f: CampaignFixture, _ expander: CampaignExpander, _ api: API, _ key: String,
                         name: String) async throws -> Int {
        var body = CampaignHTTPTests.campaignBody(f)
        body["name"] = name
        let id = try await api.call(.post, "/v1/campaigns", key: key, json: body).id
        #expect(try await api.call(.post, "/v1/campaigns/\(id)/send", key: key).status == .accepted)
        _ = try await expander.wait(campaign: Int64(id))
        return id
    }

    @Test func scheduleStoresUTCAndValidatesZone() async throws {
        try await CampaignHTTPTests.with { f, _, api, a, b in
            let id = try await api.call(.post, "/v1/campaigns", key: a, json: CampaignHTTPTests.campaignBody(f)).id
            let reply = try await api.call(.post, "/v1/campaigns/\(id)/schedule", key: a, json: [
                "send_at": "2036-12-01T09:00:00", "time_zone": "Europe/Paris", "deadline": "2036-12-01T12:30:00",
            ])
            #expect(reply.status == .ok, "\(reply.json)")
            #expect(reply.json["status"] as? String == "scheduled")
            #expect(reply.json["time_zone"] as? String == "Europe/Paris")
            #expect(try await f.int("""
                SELECT count(*) FROM campaigns WHERE id = $1 AND status = 'scheduled'
                  AND send_at = '2036-12-01T08:00:00Z'::timestamptz AND deadline = '2036-12-01T11:30:00Z'::timestamptz
                  AND time_zone = 'Europe/Paris'
                """, [String(id)]) == 1)
            // GET answers the schedule too (before scheduling: nulls, see below).
            let got = try await api.call(.get, "/v1/campaigns/\(id)", key: a)
            #expect(got.json["send_at"] as? String == "2036-12-01T08:00:00Z", "\(got.json)")
            #expect(got.json["deadline"] as? String == "2036-12-01T11:30:00Z", "\(got.json)")
            #expect(got.json["time_zone"] as? String == "Europe/Paris" && got.json["status"] as? String == "scheduled")
            let draft = try await api.call(.post, "/v1/campaigns", key: a, json: CampaignHTTPTests.campaignBody(f)).id
            let unscheduled = try await api.call(.get, "/v1/campaigns/\(draft)", key: a).json
            #expect(unscheduled["send_at"] is NSNull && unscheduled["deadline"] is NSNull, "\(unscheduled)")
            #expect(try await api.call(.get, "/v1/campaigns/\(id)", key: b).status == .notFound)
            // Summer time: 09:00 in Paris is 07:00Z.
            let summer = try await api.call(.post, "/v1/campaigns/\(id)/schedule", key: a,
                                            json: ["send_at": "2027-07-01T09:00", "time_zone": "Europe/Paris"])
            #expect(summer.status == .ok)
            #expect(try await f.int("""
                SELECT count(*) FROM campaigns WHERE id = $1 AND send_at = '2027-07-01T07:00:00Z'::timestamptz
                  AND deadline IS NULL
                """, [String(id)]) == 1)

            let badZone = try await api.call(.post, "/v1/campaigns/\(id)/schedule", key: a,
                                             json: ["send_at": "2036-12-01T09:00:00", "time_zone": "Mars/Olympus_Mons"])
            #expect(badZone.status == .unprocessableContent && badZone.isProblem)
            #expect(badZone.detail.contains("Mars/Olympus_Mons"), "\(badZone.detail)")
            let badTime = try await api.call(.post, "/v1/campaigns/\(id)/schedule", key: a,
                                             json: ["send_at": "tomorrow at nine", "time_zone": "UTC"])
            #expect(badTime.status == .unprocessableContent && badTime.detail.contains("send_at"))
            let badDeadline = try await api.call(.post, "/v1/campaigns/\(id)/schedule", key: a, json: [
                "send_at": "2036-12-01T09:00:00", "time_zone": "Europe/Paris", "deadline": "2036-12-01T08:00:00",
            ])
            #expect(badDeadline.status == .unprocessableContent && badDeadline.detail.contains("deadline"))
            // Still the summer schedule.
            #expect(try await f.int("SELECT count(*) FROM campaigns WHERE id = $1 AND send_at = '2027-07-01T07:00:00Z'",
                                    [String(id)]) == 1)

            // A cancelled campaign cannot be scheduled.
            #expect(try await api.call(.post, "/v1/campaigns/\(id)/cancel", key: a).status == .accepted)
            let late = try await api.call(.post, "/v1/campaigns/\(id)/schedule", key: a,
                                          json: ["send_at": "2036-12-01T09:00:00", "time_zone": "UTC"])
            #expect(late.status == .conflict && late.isProblem)
        }
    }

    @Test func parsesLocalTimes() throws {
        let paris = try #require(TimeZone(identifier: "Europe/Paris"))
        let utc = try #require(TimeZone(identifier: "UTC"))
        let winter = try #require(CampaignStore.parseLocalTime("2036-12-01T09:00:00", in: paris))
        #expect(winter == CampaignStore.parseLocalTime("2036-12-01T08:00:00Z", in: utc))
        #expect(winter == CampaignStore.parseLocalTime("2036-12-01T10:00:00+02:00", in: paris))
        #expect(CampaignStore.parseLocalTime("2026-02-31T09:00:00", in: paris) == nil)
        #expect(CampaignStore.parseLocalTime("2036-12-01", in: paris) == nil)
        #expect(CampaignStore.parseLocalTime("2036-12-01T25:00", in: paris) == nil)
    }

    @Test func schedulerStartsDueAndExpiresOverdue() async throws {
        try await CampaignFixture.with(count: 60) { f in
            let store = CampaignStore(f.db, chunkSize: 20)
            let expander = f.expander()
            let base = Date()
            let due = try await f.createCampaign("due")
            let overdue = try await f.createCampaign("overdue")
            let later = try await f.createCampaign("later")
            _ = try await store.schedule(tenant: f.tenant, id: due.id, sendAt: base + 86_400, timeZone: "UTC",
                                         deadline: nil)
            _ = try await store.schedule(tenant: f.tenant, id: overdue.id, sendAt: base + 86_400,
                                         timeZone: "Europe/Paris", deadline: base + 86_400 + 3600)
            _ = try await store.schedule(tenant: f.tenant, id: later.id, sendAt: base + 10 * 86_400,
                                         timeZone: "UTC", deadline: nil)

            // Before anything is due: nothing happens.
            let early = CampaignScheduler(store: store, expander: expander, now: { base + 3600 })
            #expect(try await early.tick() == SchedulerTick())

            // Herald was down past the deadline of one of them.
            let clock = base + 86_400 + 2 * 3600
            let scheduler = CampaignScheduler(store: store, expander: expander, now: { clock })
            let tick = try await scheduler.tick()
            #expect(tick.expired == [overdue.id])
            #expect(tick.started == [due.id])
            _ = try await expander.wait(campaign: due.id)
            #expect(try await store.campaign(tenant: f.tenant, id: due.id)?.status == .sending)
            #expect(try await store.campaign(tenant: f.tenant, id: overdue.id)?.status == .expired)
            #expect(try await store.campaign(tenant: f.tenant, id: later.id)?.status == .scheduled)
            #expect(try f.spooled(campaign: due.id).count == f.expected.count)
            #expect(try f.spooled(campaign: overdue.id).isEmpty)
            #expect(try await f.int("SELECT count(*) FROM campaign_chunks WHERE campaign_id = $1",
                                    [String(overdue.id)]) == 0)
            // Nothing more to do on the next tick.
            #expect(try await scheduler.tick() == SchedulerTick())

            // run() ticks on its own and stops when cancelled.
            let laterClock = base + 11 * 86_400
            let running = CampaignScheduler(store: store, expander: expander, interval: .milliseconds(50),
                                            now: { laterClock })
            let task = Task { await running.run() }
            var status: CampaignStatus?
            for _ in 0..<200 {
                status = try await store.campaign(tenant: f.tenant, id: later.id)?.status
                if status != .scheduled { break }
                try await Task.sleep(for: .milliseconds(25))
            }
            task.cancel()
            await task.value
            #expect(status == .sending)
            _ = try await expander.wait(campaign: later.id)
        }
    }

    @Test func duplicateMakesADraftCopy() async throws {
        try await CampaignHTTPTests.with { f, expander, api, a, _ in
            let id = try await Self.expanded(f, expander, api, a, name: "Launch")
            let copy = try await api.call(.post, "/v1/campaigns/\(id)/duplicate", key: a)
            #expect(copy.status == .created)
            #expect(copy.id != id && copy.id > 0)
            #expect(copy.json["name"] as? String == "Launch (copy)")
            #expect(copy.json["status"] as? String == "draft")
            #expect(copy.json["subject"] as? String == "Hi {{first_name}}")
            #expect(copy.json["list_ids"] as? [Int] == f.lists.map { Int($0) })
            #expect(copy.response.headers[.location] == "/v1/campaigns/\(copy.id)")
            // The copy is a draft of its own: it can be edited; the original goes on sending.
            #expect(try await api.call(.patch, "/v1/campaigns/\(copy.id)", key: a, json: ["name": "Again"]).status == .ok)
            #expect(try await api.call(.get, "/v1/campaigns/\(id)", key: a).json["status"] as? String == "sending")
        }
    }

    @Test func testSendSpoolsExactlyTheGivenAddresses() async throws {
        try await CampaignHTTPTests.with { f, _, api, a, _ in
            let id = try await api.call(.post, "/v1/campaigns", key: a, json: CampaignHTTPTests.campaignBody(f)).id
            let reply = try await api.call(.post, "/v1/campaigns/\(id)/test", key: a,
                                           json: ["emails": ["user1@example.com", "qa@elsewhere.org", "Boss@Example.NET"]])
            #expect(reply.status == .accepted, "\(reply.json)")
            #expect(reply.json["accepted"] as? Int == 3)
            let messages = reply.json["messages"] as? [[String: Any]] ?? []
            #expect(messages.count == 3)
            let envelopes = try Self.spooled(f, campaign: id, in: .queue)
            #expect(envelopes.count == 3)
            #expect(Set(envelopes.map(\.id.rawValue)) == Set(messages.compactMap { $0["id"] as? String }))
            #expect(Set(envelopes.flatMap { $0.recipients.map(\.address) })
                    == ["user1@example.com", "qa@elsewhere.org", "boss@example.net"])
            #expect(envelopes.allSatisfy { $0.tenant == f.tenant.description })
            // The subscriber's own fields for a known address.
            let user1 = try #require(envelopes.first { $0.recipients.first?.address == "user1@example.com" })
            let body = String(decoding: try f.spool.loadMessage(user1.id, in: .queue), as: UTF8.self)
            #expect(body.contains("First1"))
            // The campaign itself is untouched.
            #expect(try await api.call(.get, "/v1/campaigns/\(id)", key: a).json["status"] as? String == "draft")

            let tooMany = try await api.call(.post, "/v1/campaigns/\(id)/test", key: a,
                                             json: ["emails": (1...21).map { "t\($0)@example.org" }])
            #expect(tooMany.status == .unprocessableContent && tooMany.isProblem)
            let bad = try await api.call(.post, "/v1/campaigns/\(id)/test", key: a, json: ["emails": ["nope"]])
            #expect(bad.status == .unprocessableContent && bad.isProblem)
            let none = try await api.call(.post, "/v1/campaigns/\(id)/test", key: a, json: ["emails": [String]()])
            #expect(none.status == .unprocessableContent)
            #expect(try Self.spooled(f, campaign: id, in: .queue).count == 3)
        }
    }

    @Test func previewRendersForOneAddressAndSendsNothing() async throws {
        try await CampaignHTTPTests.with { f, _, api, a, b in
            let id = try await api.call(.post, "/v1/campaigns", key: a, json: CampaignHTTPTests.campaignBody(f)).id
            // A subscriber of the tenant: their fields, and the subscriber id.
            let known = try await api.call(.get, "/v1/campaigns/\(id)/preview?email=User1@example.com", key: a)
            #expect(known.status == .ok, "\(known.json)")
            #expect(known.json["email"] as? String == "user1@example.com")
            #expect(known.json["subject"] as? String == "Hi First1")
            #expect(known.json["html"] as? String == "<p>Hello First1</p>")
            #expect(known.json["text"] as? String == "Hello First1")
            #expect((known.json["subscriber_id"] as? Int).map { $0 > 0 } == true, "\(known.json)")
            // Any other address: a subscriber with only the email.
            let other = try await api.call(.get, "/v1/campaigns/\(id)/preview?email=qa@elsewhere.org", key: a)
            #expect(other.status == .ok)
            #expect(other.json["subject"] as? String == "Hi ")
            #expect(other.json["subscriber_id"] is NSNull, "\(other.json)")
            let bad = try await api.call(.get, "/v1/campaigns/\(id)/preview?email=nope", key: a)
            #expect(bad.status == .unprocessableContent && bad.isProblem)
            let missing = try await api.call(.get, "/v1/campaigns/\(id)/preview", key: a)
            #expect(missing.status == .unprocessableContent)
            // Another tenant's campaign is not found, whatever the address.
            let foreign = try await api.call(.get, "/v1/campaigns/\(id)/preview?email=user1@example.com", key: b)
            #expect(foreign.status == .notFound && foreign.isProblem)
            // Nothing was queued, and the campaign is still a draft.
            #expect(try Self.spooled(f, campaign: id, in: .queue).isEmpty)
            #expect(try await api.call(.get, "/v1/campaigns/\(id)", key: a).json["status"] as? String == "draft")
        }
    }

    /// A spool that refuses the commit: a 503 that says so in words, not the spool's
    /// error (paths, system calls), which goes to the log.
    @Test func testSendIntoARefusingSpoolIsA503InWords() async throws {
        try await CampaignFixture.with(count: 3) { f in
            let keyA = try #require(try await TenantStore(f.db).addKey(tenantName: "tenant-a")).key
            let dir = NSTemporaryDirectory() + "herald-refusing-" + UUID().uuidString
            let broken = try Spool(path: dir)
            try FileManager.default.removeItem(atPath: dir)
            let router = HTTPAPI.makeRouter(spool: f.spool, writer: SpoolWriter(spool: broken),
                                            verifier: StaticAPIKeys([]), hostname: "herald.test", stores: HTTPStores(f.db))
            try await Application(router: router).test(.router) { client in
                let api = API(client: client)
                let id = try await api.call(.post, "/v1/campaigns", key: keyA, json: CampaignHTTPTests.campaignBody(f)).id
                let reply = try await api.call(.post, "/v1/campaigns/\(id)/test", key: keyA,
                                               json: ["emails": ["qa@example.org", "boss@example.net"]])
                #expect(reply.status == .serviceUnavailable && reply.isProblem, "\(reply.json)")
                #expect(reply.detail == "The spool is not accepting writes; 0 of 2 test message(s) were queued; "
                            + "retry later.")
                #expect(!reply.detail.contains(dir))
            }
        }
    }

    /// On a node that only queues (no queue manager), pause and resume are recorded in
    /// the spool's held-campaigns file (a later start holds them at once); cancel records
    /// the waiting recipients as cancelled. The spool side of a delivering node is in
    /// the scheduler tests and Integration/CampaignControl.
    @Test func pauseResumeCancelAfterExpansion() async throws {
        try await CampaignHTTPTests.with { f, expander, api, a, _ in
            let one = try await Self.expanded(f, expander, api, a, name: "One")
            let two = try await Self.expanded(f, expander, api, a, name: "Two")
            let n = f.expected.count
            #expect(try Self.spooled(f, campaign: one, in: .queue).count == n)

            let paused = try await api.call(.post, "/v1/campaigns/\(one)/pause", key: a)
            #expect(paused.status == .accepted && paused.json["status"] as? String == "paused")
            #expect(try f.spool.heldCampaigns() == [String(one)])
            #expect(try Self.spooled(f, campaign: one, in: .queue).count == n, "held in place, not moved")
            let pausedStats = try await api.call(.get, "/v1/campaigns/\(one)/stats", key: a)
            #expect(pausedStats.json["remaining"] as? Int == n && pausedStats.json["estimated_completion"] == nil)

            let resumed = try await api.call(.post, "/v1/campaigns/\(one)/resume", key: a)
            #expect(resumed.status == .accepted && resumed.json["status"] as? String == "sending")
            #expect(try f.spool.heldCampaigns().isEmpty)

            #expect(try await api.call(.post, "/v1/campaigns/\(one)/pause", key: a).status == .accepted)
            let cancelled = try await api.call(.post, "/v1/campaigns/\(one)/cancel", key: a)
            #expect(cancelled.status == .accepted && cancelled.json["status"] as? String == "cancelled")
            // No campaign is paused any more: nothing held, once the background pass ran.
            let deadline = Date().addingTimeInterval(10)
            while try !f.spool.heldCampaigns().isEmpty && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(try f.spool.heldCampaigns().isEmpty)
            #expect(try await f.int("""
                SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND state = 'cancelled'
                  AND reason = 'campaign cancelled'
                """, [String(one)]) == n)
            let stats = try await api.call(.get, "/v1/campaigns/\(one)/stats", key: a)
            #expect(stats.json["cancelled"] as? Int == n && stats.json["remaining"] as? Int == 0, "\(stats.json)")
            #expect(stats.json["finished_at"] is String)
            // The other campaign is untouched.
            let other = try await api.call(.get, "/v1/campaigns/\(two)/stats", key: a)
            #expect(other.json["status"] as? String == "sending" && other.json["remaining"] as? Int == n)
        }
    }

    @Test func failuresListAndRetryFailed() async throws {
        try await CampaignHTTPTests.with { f, expander, api, a, _ in
            let id = try await Self.expanded(f, expander, api, a, name: "Launch")
            let empty = try await api.call(.get, "/v1/campaigns/\(id)/failures", key: a)
            #expect(empty.status == .ok && empty.data.isEmpty)
            let subscribers = try await f.db.query(
                "SELECT subscriber_id FROM campaign_recipients WHERE campaign_id = $1 ORDER BY subscriber_id LIMIT 2",
                [String(id)]).compactMap { $0[0] }
            #expect(subscribers.count == 2)
            try await f.db.execute("""
                UPDATE campaign_recipients SET state = 'bounced', reason = '550 5.1.1 no such user'
                WHERE campaign_id = $1 AND subscriber_id = $2
                """, [String(id), subscribers[0]])
            try await f.db.execute("UPDATE subscribers SET status = 'complained' WHERE id = $1", [subscribers[1]])
            let failures = try await api.call(.get, "/v1/campaigns/\(id)/failures", key: a)
            #expect(failures.status == .ok)
            #expect(failures.data.count == 2)
            #expect(failures.data.first?["state"] as? String == "bounced")
            #expect(failures.data.first?["reason"] as? String == "550 5.1.1 no such user")
            #expect((failures.data.first?["email"] as? String)?.hasSuffix("@example.com") == true)
            #expect(failures.data.last?["state"] as? String == "complained")
            let page = try await api.call(.get, "/v1/campaigns/\(id)/failures?limit=1", key: a)
            #expect(page.data.count == 1 && page.next != nil)

            // The bounced recipient is still an active subscriber: re-planned; the one who
            // complained is not (its row was not a failure).
            let retry = try await api.call(.post, "/v1/campaigns/\(id)/retry-failed", key: a)
            #expect(retry.status == .accepted, "\(retry.json)")
            #expect(retry.json["retried"] as? Int == 1 && retry.json["status"] as? String == "sending")
            _ = try await expander.wait(campaign: Int64(id))
            let after = try await api.call(.get, "/v1/campaigns/\(id)/stats", key: a)
            #expect(after.json["status"] as? String == "sending", "\(after.json)")
            #expect(try await f.int("SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND state = 'queued'"
                                    + " AND subscriber_id = $2", [String(id), subscribers[0]]) == 1)
            // A draft has nothing to retry.
            let draft = try await api.call(.post, "/v1/campaigns", key: a, json: CampaignHTTPTests.campaignBody(f)).id
            let conflict = try await api.call(.post, "/v1/campaigns/\(draft)/retry-failed", key: a)
            #expect(conflict.status == .conflict && conflict.isProblem)
        }
    }

    @Test func tenantIsolationOnEveryNewRoute() async throws {
        try await CampaignHTTPTests.with { f, _, api, a, b in
            let id = try await api.call(.post, "/v1/campaigns", key: a, json: CampaignHTTPTests.campaignBody(f)).id
            let routes: [(HTTPRequest.Method, String, Any?)] = [
                (.post, "/schedule", ["send_at": "2036-12-01T09:00:00", "time_zone": "Europe/Paris"]),
                (.post, "/schedule", ["send_at": "2036-12-01T09:00:00", "time_zone": "Nowhere/Else"]),
                (.post, "/duplicate", nil),
                (.post, "/test", ["emails": ["spy@example.org"]]),
                (.get, "/failures", nil),
                (.post, "/retry-failed", nil),
            ]
            for (method, path, json) in routes {
                let reply = try await api.call(method, "/v1/campaigns/\(id)\(path)", key: b, json: json)
                #expect(reply.status == .notFound && reply.isProblem, "\(method) \(path)")
                #expect(try await api.call(method, "/v1/campaigns/999999\(path)", key: a, json: json).status
                        == .notFound, "\(method) \(path) unknown id")
            }
            #expect(try f.spool.enumerate(.queue).isEmpty)
            #expect(try await f.int("SELECT count(*) FROM campaigns") == 1)
            let got = try await api.call(.get, "/v1/campaigns/\(id)", key: a)
            #expect(got.json["status"] as? String == "draft")
        }
    }
}
