import Foundation
import HeraldTestSupport
import Testing

/// A campaign's `send_rate` through `herald serve`, across a SIGKILL: 20 subscribers at
/// 4/s over ten domains. Arrivals are spread at the campaign's rate (not at the sink's
/// speed); Herald is killed part-way, and after the restart the rest still goes at the
/// campaign's rate (the pacing lives in the envelopes, not in memory), none is lost,
/// and at most the one transaction in flight at the kill arrives twice.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct CampaignPacingEndToEnd {
        static let domain = "paced.test"
        static let count = 20

        @Test("send_rate paces delivery over all domains, and still does after a SIGKILL and restart")
        func pacedAcrossACrash() async throws {
            try await CampaignIT.withDeliveringHerald(database: "campaign_pacing_e2e", domain: Self.domain) { h in
                let herald = h.herald, api = h.api, sink = h.sink
                let list = try await api.createList("paced")
                let csv = herald.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: Self.count, domain: Self.domain, to: csv)
                let addresses = (0..<Self.count).map { CampaignIT.address($0, domain: Self.domain) }
                _ = try await api.importCSV(list: list, path: csv)
                let created = try await api.expect(201, "POST", "/v1/campaigns", [
                    "name": "paced", "from": "News <news@campaign.test>", "subject": "Hi",
                    "text": "Hello {{email}}\n{{unsubscribe_url}}\n", "list_ids": [list], "send_rate": "4/s",
                ] as [String: Any])
                let id = try #require(created["id"] as? Int)
                #expect(created["send_rate"] as? String == "4/s", "\(created)")
                try await api.send(campaign: id)

                let first = await DeliveryIT.waitUntil(timeout: 30) { sink.index().count >= 5 }
                #expect(first, "delivery did not start\n\(herald.diagnostics())")
                let killed = await herald.kill()
                #expect(killed?.signaled == true)
                try await Task.sleep(for: .milliseconds(300))
                let beforeRestart = sink.index().count
                #expect(beforeRestart < Self.count, "all delivered before the kill: pacing did not hold them")

                try await herald.restart()
                let done = await DeliveryIT.waitUntil(timeout: 60) {
                    Set(sink.index().flatMap(\.rcpts)).count >= Self.count
                }
                #expect(done, "\(sink.index().count) arrived\n\(herald.diagnostics())")
                let index = sink.index().filter { !["", "<>"].contains($0.mail_from) }
                let received = index.flatMap(\.rcpts)
                #expect(Set(received) == Set(addresses))
                #expect(received.count <= Self.count + 1, "duplicates beyond the transaction in flight: \(received.sorted())")
                // After the restart: what was left still arrives at about 4/s (no burst).
                let after = index.dropFirst(beforeRestart).map(\.time).sorted()
                if after.count >= 4 {
                    let span = after.last! - after.first!
                    let floor = Double(after.count - 1) * 0.25 * 0.8
                    #expect(span >= floor, "\(after.count) messages after restart arrived in \(span) s, expected ≥ \(floor)")
                } else {
                    Issue.record("only \(after.count) messages were left for after the restart")
                }
            }
        }
    }
}
