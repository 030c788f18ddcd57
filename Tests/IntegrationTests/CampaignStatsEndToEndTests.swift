import Foundation
import HeraldTestSupport
import Testing

/// Delivery outcomes flow back into campaign stats through `herald serve`: a campaign to
/// 20 deliverable addresses, one the sink refuses with 550 5.1.1 and one it defers with
/// 450 4.2.1. The stats count sent / bounced / deferred (the deferred recipient once,
/// however often it is retried); the hard bounce marks the subscriber `bounced` and
/// keeps it out of the next campaign; each message's envelope sender is the
/// per-recipient `news+c<campaign>-s<subscriber>@campaign.test`, and the DSN of the
/// hard bounce goes there without counting as one of the campaign's recipients.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct CampaignStatsEndToEnd {
        static let domain = "stats.test"
        static let count = 20

        @Test("delivery outcomes update sent/bounced/deferred; a hard bounce is suppressed; VERP senders")
        func outcomesReachStats() async throws {
            try await CampaignIT.withDeliveringHerald(database: "campaign_stats_e2e", domain: Self.domain) { h in
                let herald = h.herald, api = h.api, sink = h.sink, database = h.database
                let list = try await api.createList("newsletter")
                let csv = herald.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: Self.count, domain: Self.domain, to: csv)
                let bad = "permfail@s1.\(Self.domain)", slow = "tempfail@s2.\(Self.domain)"
                let handle = try #require(FileHandle(forWritingAtPath: csv))
                handle.seekToEndOfFile()
                handle.write(Data("\(bad),Perm,Fail,p0\n\(slow),Temp,Fail,p0\n".utf8))
                try handle.close()
                let imported = try await api.importCSV(list: list, path: csv)
                #expect(imported["imported"] as? Int == Self.count + 2)

                let first = try await api.createCampaign(list: list, name: "one")
                try await api.send(campaign: first)
                var stats: [String: Any] = [:]
                let settled = try await DeliveryIT.waitUntil(timeout: 40) {
                    stats = try await api.stats(campaign: first)
                    return stats["sent"] as? Int == Self.count && stats["bounced"] as? Int == 1
                        && stats["deferred"] as? Int == 1
                }
                #expect(settled, "stats: \(stats)\n\(herald.diagnostics())")
                // The DSN for the hard bounce arrives at the sink (to the VERP address);
                // give the deferred recipient a retry or two (backoff 1-2 s) meanwhile.
                let dsnArrived = await DeliveryIT.waitUntil(timeout: 20) {
                    sink.index().contains { $0.rcpts.contains { $0.hasPrefix("news+c\(first)-s") } }
                }
                #expect(dsnArrived, "\(sink.index().map(\.rcpts))")
                try await Task.sleep(for: .milliseconds(3500))
                stats = try await api.stats(campaign: first)
                #expect(stats["sent"] as? Int == Self.count, "the DSN is not one of the campaign's: \(stats)")
                #expect(stats["bounced"] as? Int == 1, "\(stats)")
                #expect(stats["deferred"] as? Int == 1, "retried, still counted once: \(stats)")
                #expect(stats["failed"] as? Int == 0, "\(stats)")

                // Per-recipient envelope senders.
                let messages = sink.index().filter { !["", "<>"].contains($0.mail_from) }
                #expect(messages.count == Self.count)
                for info in messages {
                    let id = try await CampaignIT.sql(database, "SELECT id FROM subscribers WHERE email = '\(info.rcpts[0].lowercased())'")
                    #expect(info.mail_from == "news+c\(first)-s\(id)@campaign.test", "\(info.rcpts): \(info.mail_from)")
                }

                // The hard bounce: subscriber bounced, address suppressed, left out next time.
                let s = try await api.expect(200, "GET", "/v1/lists/\(list)/subscribers?email=\(bad)")
                #expect(s["status"] as? String == "bounced", "\(s)")
                #expect(try await CampaignIT.sql(database, "SELECT reason FROM suppressions WHERE email = '\(bad)'")
                        == "bounced")
                let t = try await api.expect(200, "GET", "/v1/lists/\(list)/subscribers?email=\(slow)")
                #expect(t["status"] as? String == "active", "\(t)")
                let second = try await api.createCampaign(list: list, name: "two")
                try await api.send(campaign: second)
                let stats2 = try await api.waitUntilSent(campaign: second, timeout: 30)
                #expect(stats2["total"] as? Int == Self.count + 1, "\(stats2)")
                #expect(stats2["expanded"] as? Int == Self.count + 1, "\(stats2)")
            }
        }
    }
}
