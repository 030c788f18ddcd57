import Foundation
import HeraldTestSupport
import Testing

/// `failures` and `retry-failed` through `herald serve`: a campaign with a segment to
/// 10 deliverable subscribers, two the sink refuses once with 550 5.7.1 (a policy
/// refusal: a bounce, but not of the address) and one it refuses with 550 5.1.1 (a hard
/// bounce: suppressed). `failures` lists all three with the sink's reply; `retry-failed`
/// sends again to the two policy refusals only (the hard-bounced address is
/// suppressed), the sink accepts them the second time, and the stats and failures say
/// so. Subscribers outside the segment get nothing.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct CampaignRetryEndToEnd {
        static let domain = "retry.test"
        static let count = 10

        @Test("failures name the reply; retry-failed re-sends the policy refusals, not the hard bounce; segments")
        func retryFailed() async throws {
            try await CampaignIT.withDeliveringHerald(database: "campaign_retry_e2e", domain: Self.domain) { h in
                let herald = h.herald, api = h.api, sink = h.sink
                let list = try await api.createList("newsletter")
                let csv = herald.directory + "/subscribers.csv"
                // plan p0/p1/p2 for u<i>; the segment takes p0 and p1 only.
                var text = "email,first_name,last_name,plan\n"
                var inSegment: [String] = []
                for i in 0..<15 {
                    let plan = i < Self.count ? "p\(i % 2)" : "p2"
                    text += "u\(i)@s\(i % 3).\(Self.domain),First\(i),Last\(i),\(plan)\n"
                    if plan != "p2" { inSegment.append("u\(i)@s\(i % 3).\(Self.domain)") }
                }
                let policy = ["policyonce-a@s1.\(Self.domain)", "policyonce-b@s2.\(Self.domain)"]
                let hard = "permfail@s0.\(Self.domain)"
                for address in policy + [hard] { text += "\(address),P,F,p1\n" }
                try text.write(toFile: csv, atomically: true, encoding: .utf8)
                let imported = try await api.importCSV(list: list, path: csv)
                #expect(imported["imported"] as? Int == 18, "\(imported)")

                let created = try await api.expect(201, "POST", "/v1/campaigns", [
                    "name": "retry", "from": "Herald News <news@campaign.test>", "subject": "Hi {{first_name}}",
                    "text": "Plan {{attributes.plan}} for {{email}}.\nUnsubscribe: {{unsubscribe_url}}\n",
                    "list_ids": [list], "segment": ["attribute": "plan", "op": "in", "value": ["p0", "p1"]],
                ] as [String: Any])
                let id = try #require(created["id"] as? Int)
                #expect((created["segment"] as? [String: Any])?["op"] as? String == "in", "\(created)")
                try await api.send(campaign: id)

                var stats: [String: Any] = [:]
                let settled = try await DeliveryIT.waitUntil(timeout: 60) {
                    stats = try await api.stats(campaign: id)
                    return stats["sent"] as? Int == Self.count && stats["bounced"] as? Int == 3
                }
                #expect(settled, "stats: \(stats)\n\(herald.diagnostics())")
                #expect(stats["total"] as? Int == Self.count + 3, "the segment: \(stats)")
                #expect(stats["rate_per_minute"] is Int, "\(stats)")

                // failures: all three with the reply text, once the outcomes are recorded.
                var failures: [[String: Any]] = []
                let listed = try await DeliveryIT.waitUntil(timeout: 20) {
                    failures = try await api.expect(200, "GET", "/v1/campaigns/\(id)/failures")["data"]
                        as? [[String: Any]] ?? []
                    return failures.count == 3
                }
                #expect(listed, "\(failures)")
                let byEmail = Dictionary(failures.map { ($0["email"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
                for address in policy {
                    #expect((byEmail[address]?["reason"] as? String)?.contains("5.7.1") == true, "\(failures)")
                    #expect(byEmail[address]?["state"] as? String == "bounced")
                }
                #expect((byEmail[hard]?["reason"] as? String)?.contains("5.1.1") == true, "\(failures)")

                // retry-failed: the two policy refusals, not the suppressed hard bounce.
                let retry = try await api.expect(202, "POST", "/v1/campaigns/\(id)/retry-failed")
                #expect(retry["retried"] as? Int == 2, "\(retry)")
                let again = try await DeliveryIT.waitUntil(timeout: 60) {
                    stats = try await api.stats(campaign: id)
                    return stats["sent"] as? Int == Self.count + 2 && stats["bounced"] as? Int == 1
                        && stats["status"] as? String == "sent"
                }
                #expect(again, "stats: \(stats)\n\(herald.diagnostics())")
                let received = sink.index().filter { !["", "<>"].contains($0.mail_from) }.flatMap(\.rcpts)
                #expect(Set(received) == Set(inSegment + policy), "\(received.sorted())")
                #expect(received.count == Self.count + 2, "each once: \(received.sorted())")
                let left = try await api.expect(200, "GET", "/v1/campaigns/\(id)/failures")["data"] as? [[String: Any]]
                #expect(left?.map { $0["email"] as? String } == [hard], "\(left ?? [])")
                // Nothing more to retry.
                let none = try await api.expect(202, "POST", "/v1/campaigns/\(id)/retry-failed")
                #expect(none["retried"] as? Int == 0, "\(none)")
            }
        }
    }
}
