import Foundation
import HeraldTestSupport
import Testing

/// Pause, resume and cancel of a paced campaign after its expansion finished, through
/// two delivering `herald serve` processes on one PostgreSQL database (each with its
/// own spool, both routing to one test MX), one of them down while a pause and a
/// cancel are made:
/// - the campaign stays `sending` after expansion, with an estimated completion from its
///   send rate;
/// - pause holds the mail of both nodes (the one that was down holds it from its start),
///   and `herald queue list` says why; resume keeps the pace; cancel deletes the mail of
///   both nodes (the one that was down on its return) and the stats add up.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(5)))
    struct CampaignControl {
        static let domain = "control.test"
        static let count = 3_000
        /// Per node: 2 a second.
        static let rate = "120/m"

        /// The campaign's messages in a node's `queue/`.
        static func queued(_ herald: HeraldProcess) -> Int { CampaignIT.spoolCensus(herald).envelopes }

        static func held(_ herald: HeraldProcess) -> String {
            (try? String(contentsOfFile: herald.spoolPath + "/held-campaigns", encoding: .utf8)) ?? ""
        }

        @Test("pause, resume and cancel of a paced 3,000-recipient campaign after expansion, on two nodes, one down at times")
        func pauseResumeCancel() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "campaign_control")
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let portA = try HeraldProcess.freeLoopbackPort(), portB = try HeraldProcess.freeLoopbackPort()
            let routes = [DeliveryIT.route("*.\(Self.domain)", port: sink.port),
                          DeliveryIT.route("campaign.test", port: sink.port)]
            try await HeraldProcess.with(CampaignIT.options(database: database, httpPort: portA, delivery: true,
                                                            toml: routes)) { a in
                _ = try await a.httpPort()
                let api = CampaignIT.API(port: portA, key: try await CampaignIT.createTenant(a, "acme"))
                let list = try await api.createList("control")
                let csv = a.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: Self.count, domain: Self.domain, to: csv)
                _ = try await api.importCSV(list: list, path: csv)
                let created = try await api.expect(201, "POST", "/v1/campaigns", [
                    "name": "control", "from": "News <news@campaign.test>", "subject": "Hi",
                    "text": "Hello {{email}}\n{{unsubscribe_url}}\n", "list_ids": [list], "send_rate": Self.rate,
                ] as [String: Any])
                let id = try #require(created["id"] as? Int)
                // Paused during expansion: A stops within a fraction of a second (not at the
                // end of its 1,000-recipient chunk), records what it committed, and lets go.
                try await api.send(campaign: id)
                _ = try await api.expect(202, "POST", "/v1/campaigns/\(id)/pause")
                var midway: [String: Any] = [:]
                let letGo = await DeliveryIT.waitUntil(timeout: 60) {
                    guard let first = try? await api.stats(campaign: id) else { return false }
                    try? await Task.sleep(for: .milliseconds(700))
                    guard let second = try? await api.stats(campaign: id),
                          let claimed = try? await CampaignIT.sql(database, """
                              SELECT count(*) FROM campaign_chunks WHERE campaign_id = \(id) AND claimed_by IS NOT NULL AND NOT done
                              """)
                    else { return false }
                    midway = second
                    return claimed == "0" && second["status"] as? String == "paused"
                        && first["expanded"] as? Int == second["expanded"] as? Int
                }
                let expandedAtPause = midway["expanded"] as? Int ?? -1
                #expect(letGo && expandedAtPause >= 0 && expandedAtPause < Self.count, "\(midway)")
                print("campaign control: \(expandedAtPause) of \(Self.count) expanded when the pause took hold")
                try await HeraldProcess.with(CampaignIT.options(database: database, httpPort: portB, delivery: true,
                                                                toml: routes)) { b in
                    _ = try await b.httpPort()
                    // Resumed through B: B's expander takes the other chunk.
                    let apiB = CampaignIT.API(port: portB, key: api.key)
                    _ = try await apiB.expect(202, "POST", "/v1/campaigns/\(id)/resume")
                    let expanded = try await api.waitUntilExpanded(campaign: id, timeout: 120)
                    #expect(expanded["expanded"] as? Int == Self.count, "\(expanded)")
                    #expect(Self.queued(b) > 0, "B expands the rest: A \(Self.queued(a)), B \(Self.queued(b))")

                    // Expansion is over, the mail is not: still sending, and the estimate
                    // follows the send rate (one node's 2/s: about remaining / 2 seconds).
                    let sending = try await api.stats(campaign: id)
                    #expect(sending["status"] as? String == "sending", "\(sending)")
                    let remaining = try #require(sending["remaining"] as? Int)
                    #expect(remaining > Self.count - 200, "\(sending)")
                    let eta = try #require((sending["estimated_completion"] as? String).flatMap {
                        ISO8601DateFormatter().date(from: $0)
                    }, "\(sending)")
                    let expected = Double(remaining) / 2
                    #expect(abs(eta.timeIntervalSinceNow - expected) < expected * 0.1 + 5,
                            "ETA \(eta.timeIntervalSinceNow) s for \(remaining) at \(Self.rate)")

                    // Pause while B is down.
                    #expect(await b.kill()?.signaled == true)
                    let paused = try await api.call("POST", "/v1/campaigns/\(id)/pause")
                    #expect(paused.status == 202 && paused.object["status"] as? String == "paused", "\(paused.text)")
                    #expect(Self.held(a) == "\(id)\n", "A holds the campaign when the pause answers")
                    try await b.restart()
                    _ = try await b.httpPort()
                    #expect(Self.held(b) == "\(id)\n", "B holds it from its start")
                    let before = sink.index().count
                    try await Task.sleep(for: .seconds(3))
                    #expect(sink.index().count == before, "mail arrived while paused")
                    let listing = try await b.cli(["queue", "list", "--campaign", String(id)])
                    #expect(listing.termination.succeeded && listing.stdoutText.contains("campaign \(id) paused"),
                            "\(listing.stdoutText.prefix(600))")

                    // Resume: the pace holds (2/s per node, not a burst of what waited).
                    let resumed = try await api.call("POST", "/v1/campaigns/\(id)/resume")
                    #expect(resumed.status == 202 && resumed.object["status"] as? String == "sending")
                    let restarted = await DeliveryIT.waitUntil(timeout: 20) { sink.index().count > before }
                    #expect(restarted, "nothing arrived after resume\n\(a.diagnostics())")
                    let from = sink.index().count
                    try await Task.sleep(for: .seconds(4))
                    let paced = sink.index().count - from
                    #expect(paced > 0 && paced <= 30, "\(paced) arrived in 4 s after resume at \(Self.rate) per node")
                    #expect(Self.held(a).isEmpty && Self.held(b).isEmpty)

                    // Cancel while B is down: A's mail goes at once, B's when it returns.
                    #expect(await b.kill()?.signaled == true)
                    let waitingOnB = Self.queued(b)
                    #expect(waitingOnB > 0)
                    let cancelled = try await api.call("POST", "/v1/campaigns/\(id)/cancel")
                    #expect(cancelled.status == 202 && cancelled.object["status"] as? String == "cancelled")
                    let emptyA = await DeliveryIT.waitUntil(timeout: 30) { Self.queued(a) == 0 }
                    #expect(emptyA, "A still has \(Self.queued(a)) of the campaign's messages")
                    #expect(Self.queued(b) == waitingOnB, "B was down: its spool is as it was")
                    try await b.restart()
                    _ = try await b.httpPort()
                    let emptyB = await DeliveryIT.waitUntil(timeout: 30) { Self.queued(b) == 0 }
                    #expect(emptyB, "B still has \(Self.queued(b)) of the campaign's messages")
                    let settled = sink.index().count
                    try await Task.sleep(for: .seconds(2))
                    #expect(sink.index().count == settled, "mail arrived after the cancel was applied")

                    // The stats add up: every recipient delivered or cancelled, none remaining.
                    let delivered = Set(sink.index().flatMap(\.rcpts)).count
                    var final: [String: Any] = [:]
                    let counted = await DeliveryIT.waitUntil(timeout: 20) {
                        final = (try? await api.stats(campaign: id)) ?? [:]
                        return final["sent"] as? Int == delivered
                    }
                    #expect(counted, "sent \(final["sent"] ?? "?") vs \(delivered) delivered: \(final)")
                    #expect(final["status"] as? String == "cancelled" && final["remaining"] as? Int == 0, "\(final)")
                    #expect(final["sent"] as? Int == delivered)
                    #expect((final["sent"] as? Int ?? 0) + (final["cancelled"] as? Int ?? 0) == Self.count, "\(final)")
                    let states = try await CampaignIT.sql(database, """
                        SELECT count(*) FILTER (WHERE state = 'cancelled') || '|' || count(*) FILTER (WHERE state = 'sent')
                        FROM campaign_recipients WHERE campaign_id = \(id)
                        """)
                    #expect(states == "\(Self.count - delivered)|\(delivered)")
                    let log = (try? String(contentsOfFile: b.deliveryLogPath, encoding: .utf8)) ?? ""
                    #expect(log.contains("\"result\":\"cancelled\""), "B logs the recipients it cancelled")
                    print("campaign control: \(delivered) delivered, \(Self.count - delivered) cancelled; B held \(waitingOnB) at the cancel")
                }
            }
        }
    
        @Test("herald queue hold/release/delete --campaign: held in the stats, waiting again, then cancelled")
        func postmasterHoldReleaseDeleteAreCounted() async throws {
            try await CampaignIT.withDeliveringHerald(database: "campaign_postmaster", domain: Self.domain) { h in
                let herald = h.herald, api = h.api
                let list = try await api.createList("postmaster")
                let csv = herald.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: 20, domain: Self.domain, to: csv)
                _ = try await api.importCSV(list: list, path: csv)
                let created = try await api.expect(201, "POST", "/v1/campaigns", [
                    "name": "slow", "from": "News <news@campaign.test>", "subject": "Hi",
                    "text": "Hello {{email}}\n{{unsubscribe_url}}\n", "list_ids": [list], "send_rate": "1/h",
                ] as [String: Any])
                let id = try #require(created["id"] as? Int)
                try await api.send(campaign: id)
                _ = try await api.waitUntilExpanded(campaign: id, timeout: 60)
                var stats: [String: Any] = [:]
                // 1/h: the first message goes at once, the other 19 wait for the pace.
                let first = await DeliveryIT.waitUntil(timeout: 30) {
                    stats = (try? await api.stats(campaign: id)) ?? [:]
                    return stats["sent"] as? Int == 1
                }
                #expect(first, "\(stats)")
                let hold = try await herald.cli(["queue", "hold", "--campaign", String(id)])
                #expect(hold.termination.succeeded, "\(hold)")
                let held = await DeliveryIT.waitUntil(timeout: 30) {
                    stats = (try? await api.stats(campaign: id)) ?? [:]
                    return stats["held"] as? Int == 19
                }
                #expect(held, "the next rescan reports the holds: \(stats)\n\(herald.diagnostics())")
                #expect(stats["status"] as? String == "sending" && stats["remaining"] as? Int == 19, "\(stats)")
                let release = try await herald.cli(["queue", "release", "--campaign", String(id)])
                #expect(release.termination.succeeded, "\(release)")
                let released = await DeliveryIT.waitUntil(timeout: 30) {
                    stats = (try? await api.stats(campaign: id)) ?? [:]
                    return stats["held"] as? Int == 0
                }
                #expect(released, "\(stats)")
                let queued = try await CampaignIT.sql(h.database, """
                    SELECT count(*) FROM campaign_recipients WHERE campaign_id = \(id) AND state = 'queued'
                    """)
                #expect(queued == "19", "released recipients wait again")
                let deleted = try await herald.cli(["queue", "delete", "--campaign", String(id)])
                #expect(deleted.termination.succeeded, "\(deleted)")
                // The next rescan reports the deletions; with every recipient final, the campaign is done.
                let done = await DeliveryIT.waitUntil(timeout: 30) {
                    stats = (try? await api.stats(campaign: id)) ?? [:]
                    return stats["status"] as? String == "sent"
                }
                #expect(done, "\(stats)\n\(herald.diagnostics())")
                let sent = stats["sent"] as? Int ?? -1
                #expect(sent >= 1 && sent + (stats["cancelled"] as? Int ?? 0) == 20, "\(stats)")
                #expect(stats["remaining"] as? Int == 0 && stats["completion"] as? String == "partial")
                let reasons = try await CampaignIT.sql(h.database, """
                    SELECT DISTINCT reason FROM campaign_recipients WHERE campaign_id = \(id) AND state = 'cancelled'
                    """)
                #expect(reasons == "deleted from the queue by the postmaster")
            }
        }
    }
}
