import Foundation
import HeraldTestSupport
import Spool
import Testing

@testable import Campaigns
@testable import CampaignStore

/// Segments (parsing, the jsonpath they compile to, and the recipients they select in
/// PostgreSQL), per-recipient outcomes in `campaign_recipients`, `retry-failed`, and the
/// send policy (rate, window) written into each campaign message's envelope.
@Suite("Campaign segments, outcomes and retries", .serialized)
struct CampaignSegmentRetryTests {
    static func segment(_ json: String) throws -> Segment {
        try Segment(jsonText: json)
    }

    static func segmentError(_ json: String) -> String? {
        do {
            _ = try Segment(jsonText: json)
            return nil
        } catch {
            return error.message
        }
    }

    @Test func segmentErrorsNameThePlace() {
        #expect(Self.segmentError("[]")?.hasPrefix("segment: expected an object") == true)
        #expect(Self.segmentError(#"{"all": []}"#) == "segment.all: expected a non-empty array")
        #expect(Self.segmentError(#"{"all": [{"attribute": "a", "op": "like", "value": 1}]}"#)?
                .hasPrefix("segment.all[0].op: expected one of eq, ne") == true)
        #expect(Self.segmentError(#"{"any": [{"attribute": "a", "op": "eq"}]}"#) == "segment.any[0].value: eq needs a value")
        #expect(Self.segmentError(#"{"attribute": "a", "op": "in", "value": 3}"#)
                == "segment.value: in takes an array of 1 to 1000 values")
        #expect(Self.segmentError(#"{"attribute": "a", "op": "exists", "value": 3}"#)
                == "segment.value: exists takes no value")
        #expect(Self.segmentError(#"{"attribute": "a", "op": "gt", "value": true}"#)?.contains("not booleans") == true)
        #expect(Self.segmentError(#"{"attribute": "", "op": "exists"}"#)?.hasPrefix("segment.attribute") == true)
        #expect(Self.segmentError(#"{"attribute": "a", "op": "eq", "value": 1, "extra": 2}"#)
                == "segment.extra: unknown key (a condition has attribute, op, value)")
        #expect(Self.segmentError(#"{"all": [{"attribute": "a", "op": "eq", "value": [1]}]}"#)
                == "segment.all[0].value: expected a string, number or boolean")
        let deep = String(repeating: #"{"all": ["#, count: 6) + #"{"attribute": "a", "op": "exists"}"#
            + String(repeating: "]}", count: 6)
        #expect(Self.segmentError(deep)?.contains("nest at most") == true)
    }

    @Test func segmentCompilesToQuotedJSONPath() throws {
        let s = try Self.segment(#"""
            {"all": [{"attribute": "plan", "op": "eq", "value": "gold"},
                     {"any": [{"attribute": "age", "op": "gte", "value": 30}, {"attribute": "vip", "op": "exists"}]},
                     {"attribute": "x", "op": "not_in", "value": ["a\"b", 2.5]}]}
            """#)
        #expect(s.jsonPath == #"(($."plan" == "gold") && (($."age" >= 30) || exists($."vip")) && !($."x" == "a\"b" || $."x" == 2.5))"#)
        // The JSON form reads back as the same segment.
        #expect(try Segment(jsonText: s.jsonText) == s)
        // A name full of jsonpath syntax stays one quoted key.
        let hostile = try Self.segment(#"{"attribute": "a\" || true || $.\"b\n", "op": "exists"}"#)
        #expect(hostile.jsonPath == #"exists($."a\" || true || $.\"b\u000a")"#)
    }

    @Test func queueIDsInvertToTheirSubscriber() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let campaign = Int64.random(in: 1...1_000_000, using: &generator)
            let subscriber = Int64.random(in: 1...(1 << 35 - 1), using: &generator)
            let micros = UInt64.random(in: 1_600_000_000_000_000...1_900_000_000_000_000, using: &generator)
            let id = CampaignExpander.deterministicQueueID(campaign: campaign, subscriber: subscriber,
                                                          startedMicros: micros)
            #expect(CampaignExpander.subscriber(fromQueueID: id.rawValue, campaign: campaign) == subscriber)
        }
        #expect(CampaignExpander.subscriber(fromQueueID: "not-a-queue-id", campaign: 1) == nil)
    }

    // MARK: - PostgreSQL

    /// Gives the fixture's subscribers `n` (their number) and `tier` attributes.
    static func addAttributes(_ f: CampaignFixture) async throws {
        try await f.db.execute("""
            UPDATE subscribers SET attributes = attributes
                || jsonb_build_object('n', substring(email from 'user([0-9]+)@')::int,
                                      'tier', CASE WHEN substring(email from 'user([0-9]+)@')::int % 2 = 0
                                                   THEN 'even' ELSE 'odd' END)
            WHERE tenant_id = $1
            """, [f.tenant.description])
    }

    @Test(.enabled(if: PostgresServer.isAvailable))
    func segmentSelectsRecipientsForPlanningAndExpansion() async throws {
        try await CampaignFixture.with(count: 300) { f in
            try await Self.addAttributes(f)
            let store = CampaignStore(f.db, chunkSize: 50)
            let segment = try Self.segment(#"""
                {"all": [{"attribute": "n", "op": "lte", "value": 120},
                         {"any": [{"attribute": "tier", "op": "eq", "value": "even"},
                                  {"attribute": "plan", "op": "starts_with", "value": "plan1"}]},
                         {"attribute": "plan", "op": "ne", "value": "plan8"}]}
                """#)
            var input = CampaignInput(name: "Seg", from: "news@example.org", subject: "Hi {{first_name}}",
                                      text: "Hello {{first_name}}", listIDs: f.lists)
            input.segment = .some(segment)
            let campaign = try await store.create(tenant: f.tenant, input)
            #expect(campaign.segment == segment)
            _ = try #require(try await store.send(tenant: f.tenant, id: campaign.id))
            let expected = Set((1...120).filter { n in
                n % 10 != 0 && n % 15 != 0 && (n % 2 == 0 || String(n).hasPrefix("1")) && n != 8
            }.map { "user\($0)@example.com" })
            #expect(try await store.stats(tenant: f.tenant, id: campaign.id)?.total == Int64(expected.count))
            let report = try await f.expander().run(campaign: campaign.id)
            #expect(report.status == .sending)
            #expect(Set(try f.spooled(campaign: campaign.id).map { $0.recipients[0].address }) == expected)

            // PATCH semantics: left out keeps the segment, null clears it.
            let draft = try await store.create(tenant: f.tenant, input)
            let kept = try #require(try await store.update(tenant: f.tenant, id: draft.id, CampaignInput(name: "Renamed")))
            #expect(kept.segment == segment)
            var clear = CampaignInput()
            clear.segment = .some(nil)
            #expect(try await store.update(tenant: f.tenant, id: draft.id, clear)?.segment == nil)
            // Duplicates keep the segment and its filter.
            let copy = try #require(try await store.duplicate(tenant: f.tenant, id: campaign.id))
            #expect(copy.segment == segment)
            _ = try await store.send(tenant: f.tenant, id: copy.id)
            #expect(try await store.stats(tenant: f.tenant, id: copy.id)?.total == Int64(expected.count))
        }
    }

    @Test(.enabled(if: PostgresServer.isAvailable))
    func sendPolicyIsWrittenIntoEachEnvelope() async throws {
        try await CampaignFixture.with(count: 20) { f in
            try await f.db.execute("""
                UPDATE subscribers SET attributes = attributes || '{"time_zone": "Asia/Tokyo"}' WHERE email = 'user1@example.com'
                """)
            try await f.db.execute("""
                UPDATE subscribers SET attributes = attributes || '{"time_zone": "Not/AZone"}' WHERE email = 'user2@example.com'
                """)
            let store = CampaignStore(f.db)
            var input = CampaignInput(name: "Paced", from: "news@example.org", subject: "Hi", text: "Hello",
                                      listIDs: f.lists)
            input.sendRate = .some("10/s")
            input.sendWindow = .some(CampaignSendWindow(start: "09:00", end: "17:30", timeZone: "Europe/Paris",
                                                        days: ["mon", "tue", "wed", "thu", "fri"],
                                                        recipientTimeZone: true))
            input.maxAttempts = .some(3)
            let campaign = try await store.create(tenant: f.tenant, input)
            #expect(campaign.sendRate == "10/s" && campaign.sendWindow?.recipientTimeZone == true)
            #expect(campaign.maxAttempts == 3)
            _ = try await store.send(tenant: f.tenant, id: campaign.id)
            _ = try await f.expander().run(campaign: campaign.id)
            let envelopes = try f.spooled(campaign: campaign.id)
            #expect(envelopes.count == f.expected.count)
            for envelope in envelopes {
                let policy = try #require(envelope.sendPolicy)
                #expect(policy.rate?.text == "10/s" && policy.rateKey == "campaign:\(campaign.id)")
                let zone = envelope.recipients[0].address == "user1@example.com" ? "Asia/Tokyo" : "Europe/Paris"
                #expect(policy.window?.timeZone == zone, "\(envelope.recipients[0].address)")
                #expect(policy.window?.start == "09:00" && policy.window?.end == "17:30")
                #expect(policy.window?.days == ["mon", "tue", "wed", "thu", "fri"])
                #expect(policy.maxAttempts == 3)
            }
            // Bad rates and windows are refused when the campaign is saved, naming the field.
            for (rate, window, message) in [
                ("10/week", nil, "send_rate:"), ("0/s", nil, "send_rate:"),
                (nil, CampaignSendWindow(start: "25:00", end: "18:00"), "send_window.start"),
                (nil, CampaignSendWindow(start: "09:00", end: "18:00", timeZone: "Mars/Olympus"), "send_window.time_zone"),
                (nil, CampaignSendWindow(start: "09:00", end: "18:00", days: ["someday"]), "send_window.days"),
            ] as [(String?, CampaignSendWindow?, String)] {
                var bad = input
                bad.sendRate = .some(rate)
                bad.sendWindow = .some(window)
                await #expect { try await store.create(tenant: f.tenant, bad) } throws: { error in
                    ((error as? StoreError)?.message.hasPrefix(message) ?? false)
                }
            }
        }
    }

    /// The outcome event of the campaign's message to `email`, as the queue manager reports it.
    static func outcome(_ f: CampaignFixture, _ envelopes: [Envelope], _ email: String,
                        _ result: CampaignDeliveryOutcome.Result, code: Int, enhanced: String,
                        reply: String) throws -> CampaignDeliveryOutcome {
        let envelope = try #require(envelopes.first { $0.recipients[0].address == email })
        return CampaignDeliveryOutcome(queueID: envelope.id.rawValue, recipient: email, tenant: envelope.tenant,
                                       campaign: envelope.campaign, result: result, code: code, enhanced: enhanced,
                                       reply: reply)
    }

    static func recipient(_ f: CampaignFixture, _ campaign: Int64, _ email: String) async throws
        -> (state: String?, reason: String?, queueID: String?)
    {
        let row = try await f.db.query("""
            SELECT r.state, r.reason, r.queue_id FROM campaign_recipients r JOIN subscribers s ON s.id = r.subscriber_id
            WHERE r.campaign_id = $1 AND s.email = $2
            """, [String(campaign), email])[0]
        return (row[0], row[1], row[2])
    }

    @Test(.enabled(if: PostgresServer.isAvailable))
    func outcomesAreRecordedPerRecipientAndRetryFailedResends() async throws {
        try await CampaignFixture.with(count: 30) { f in
            let store = CampaignStore(f.db, chunkSize: 10)
            let campaign = try await f.createCampaign()
            let c = campaign.id
            _ = try await store.send(tenant: f.tenant, id: c)
            _ = try await f.expander().run(campaign: c)
            let envelopes = try f.spooled(campaign: c)
            let recorder = CampaignStatsRecorder(db: f.db, interval: .seconds(3600))
            recorder.record(try Self.outcome(f, envelopes, "user1@example.com", .delivered, code: 250, enhanced: "2.0.0",
                                             reply: "250 2.0.0 ok"))
            recorder.record(try Self.outcome(f, envelopes, "user2@example.com", .failed, code: 550, enhanced: "5.7.1",
                                             reply: "550 5.7.1 refused by policy"))
            recorder.record(try Self.outcome(f, envelopes, "user3@example.com", .expired, code: 451, enhanced: "4.4.7",
                                             reply: "451 4.3.0 try later"))
            recorder.record(try Self.outcome(f, envelopes, "user4@example.com", .failed, code: 550, enhanced: "5.1.1",
                                             reply: "550 5.1.1 no such user"))
            recorder.record(try Self.outcome(f, envelopes, "user5@example.com", .deferred, code: 450, enhanced: "4.2.1",
                                             reply: "450 4.2.1 busy"))
            // A message of another round (not the recorded queue id) changes nothing.
            var stale = try Self.outcome(f, envelopes, "user6@example.com", .failed, code: 550, enhanced: "5.7.1",
                                         reply: "550 stale")
            stale.queueID = CampaignExpander.deterministicQueueID(campaign: c, subscriber: 6, startedMicros: 1).rawValue
            recorder.record(stale)
            await recorder.flush()
            #expect(try await Self.recipient(f, c, "user1@example.com").state == "sent")
            #expect(try await Self.recipient(f, c, "user2@example.com").state == "bounced")
            #expect(try await Self.recipient(f, c, "user2@example.com").reason == "550 5.7.1 refused by policy")
            #expect(try await Self.recipient(f, c, "user3@example.com").state == "failed")
            #expect(try await Self.recipient(f, c, "user4@example.com").state == "bounced")
            #expect(try await Self.recipient(f, c, "user5@example.com").state == "deferred")
            #expect(try await Self.recipient(f, c, "user6@example.com").state == "queued")
            let failures = try #require(try await store.failures(tenant: f.tenant, id: c))
            #expect(failures.map { $0.email } == ["user2@example.com", "user3@example.com", "user4@example.com"])
            #expect(failures[2].reason == "550 5.1.1 no such user")
            let before = try #require(try await store.stats(tenant: f.tenant, id: c))
            #expect(before.bounced == 2 && before.failed == 1 && before.sent == 1)

            // retry-failed: user2 (policy) and user3 (expired); user4 was hard-bounced and
            // is suppressed now.
            let oldIDs = try [2, 3].map { n in
                try #require(envelopes.first { $0.recipients[0].address == "user\(n)@example.com" }).id
            }
            for id in oldIDs { try f.spool.remove(id, from: .queue) }  // as delivery does after a final failure
            let (retrying, count) = try #require(try await store.retryFailed(tenant: f.tenant, id: c))
            #expect(count == 2 && retrying.status == .sending)
            await #expect { try await store.retryFailed(tenant: f.tenant, id: c) } throws: { error in
                (error as? StoreError)?.kind == .conflict
            }
            let mid = try #require(try await store.stats(tenant: f.tenant, id: c))
            #expect(mid.bounced == 1 && mid.failed == 0 && mid.expanded == before.expanded - 2)
            let report = try await f.expander().run(campaign: c)
            #expect(report.committed == 2 && report.status == .sending)
            let after = try f.spooled(campaign: c)
            for email in ["user2@example.com", "user3@example.com"] {
                let copies = after.filter { $0.recipients[0].address == email }
                #expect(copies.count == 1, "\(email)")
                #expect(!oldIDs.contains(copies[0].id), "a queue id of its own")
                let row = try await Self.recipient(f, c, email)
                #expect(row.state == "queued" && row.queueID == copies[0].id.rawValue)
            }
            #expect(after.filter { $0.recipients[0].address == "user4@example.com" }.count == 1, "not re-sent")
            let final = try #require(try await store.stats(tenant: f.tenant, id: c))
            #expect(final.expanded == before.expanded && final.bounced == 1 && final.status == .sending)
            // The new messages' outcomes land on the same rows.
            recorder.record(try Self.outcome(f, after, "user2@example.com", .delivered, code: 250, enhanced: "2.0.0",
                                             reply: "250 ok"))
            await recorder.flush()
            #expect(try await Self.recipient(f, c, "user2@example.com").state == "sent")
            #expect(try #require(try await store.failures(tenant: f.tenant, id: c)).map(\.email)
                    == ["user4@example.com"])
            // Only sent or sending campaigns retry.
            let draft = try await f.createCampaign("draft")
            await #expect { try await store.retryFailed(tenant: f.tenant, id: draft.id) } throws: { error in
                (error as? StoreError)?.kind == .conflict
            }
            #expect(try await store.retryFailed(tenant: TenantID(f.tenant.rawValue + 99), id: c) == nil)
        }
    }

    @Test(.enabled(if: PostgresServer.isAvailable))
    func anOutcomeBeforeItsCheckpointIsAppliedLater() async throws {
        try await CampaignFixture.with(count: 20) { f in
            let store = CampaignStore(f.db)
            let campaign = try await f.createCampaign()
            _ = try await store.send(tenant: f.tenant, id: campaign.id)
            _ = try await f.expander().run(campaign: campaign.id)
            let envelopes = try f.spooled(campaign: campaign.id)
            // As if the chunk's checkpoint had not been written yet.
            let saved = try await f.db.query("""
                DELETE FROM campaign_recipients r USING subscribers s
                WHERE s.id = r.subscriber_id AND r.campaign_id = $1 AND s.email = 'user1@example.com'
                RETURNING r.tenant_id, r.subscriber_id, r.queue_id
                """, [String(campaign.id)])[0]
            let recorder = CampaignStatsRecorder(db: f.db, interval: .milliseconds(100))
            recorder.record(try Self.outcome(f, envelopes, "user1@example.com", .failed, code: 550, enhanced: "5.7.1",
                                             reply: "550 5.7.1 early"))
            await recorder.flush()
            try await f.db.execute("""
                INSERT INTO campaign_recipients (tenant_id, campaign_id, subscriber_id, queue_id) VALUES ($1, $2, $3, $4)
                """, [saved[0], String(campaign.id), saved[1], saved[2]])
            var state: String?
            for _ in 0..<50 {
                state = try await Self.recipient(f, campaign.id, "user1@example.com").state
                if state == "bounced" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(state == "bounced")
            #expect(try await Self.recipient(f, campaign.id, "user1@example.com").reason == "550 5.7.1 early")
        }
    }
}
