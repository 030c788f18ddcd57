import Foundation
import HeraldTestSupport
import Testing

/// SIGKILL during a campaign's expansion, several times at random moments, each time
/// restarted (Herald resumes `sending` campaigns at start-up): afterwards every active
/// subscriber's message is in the spool exactly once.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct CampaignCrashEndToEnd {
        static let domain = "crash.test"
        static let count = 5_000

        @Test("SIGKILL during expansion, three times: every subscriber in the spool exactly once")
        func killDuringExpansion() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "campaign_crash")
            let httpPort = try HeraldProcess.freeLoopbackPort()
            let options = CampaignIT.options(database: database, httpPort: httpPort, delivery: false)
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let api = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "acme"))
                let list = try await api.createList("crash")
                let csv = herald.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: Self.count, domain: Self.domain, to: csv)
                let imported = try await api.importCSV(list: list, path: csv)
                #expect(imported["imported"] as? Int == Self.count)
                let campaign = try await api.createCampaign(list: list, name: "crash")
                let t0 = Date()
                try await api.send(campaign: campaign)
                var staleClaims = 0
                for round in 1...3 {
                    let delay = Double.random(in: 0.2...1.5)
                    try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
                    await herald.kill()
                    let state = try await CampaignIT.sql(database, """
                        SELECT count(*) FILTER (WHERE done), count(*) FILTER (WHERE NOT done AND claimed_by IS NOT NULL),
                               count(*), (SELECT status FROM campaigns WHERE id = \(campaign))
                        FROM campaign_chunks WHERE campaign_id = \(campaign)
                        """)
                    let spooled = herald.spoolIDs().count
                    print("campaign crash: round \(round): SIGKILL \(String(format: "%.2f", delay)) s in; chunks done|claimed|all|status = \(state); \(spooled) .env in the spool")
                    // The restarted process has the same node name (host + spool), so it takes
                    // back the chunks it held when it was killed, without waiting for the lease.
                    let aged = try await CampaignIT.sql(database, """
                        SELECT count(*) FROM campaign_chunks
                        WHERE campaign_id = \(campaign) AND NOT done AND claimed_by IS NOT NULL
                        """)
                    staleClaims += Int(aged) ?? 0
                    try await herald.restart()
                    _ = try await herald.httpPort()
                }
                let stats = try await api.waitUntilExpanded(campaign: campaign, timeout: 90)
                print("campaign crash: finished \(String(format: "%.2f", -t0.timeIntervalSinceNow)) s after send (3 kills); claims held at the kills: \(staleClaims); stats \(stats)")
                #expect(stats["status"] as? String == "sending", "\(stats)\n\(herald.diagnostics())")
                #expect(stats["expanded"] as? Int == Self.count)

                let census = CampaignIT.spoolCensus(herald)
                let expected = Set((0..<Self.count).map { CampaignIT.address($0, domain: Self.domain) })
                let check = CampaignIT.check(census.byRecipient, expected: expected)
                print("campaign crash: \(census.envelopes) envelopes (\(census.unreadable) unreadable); missing \(check.missing.count), duplicates \(check.duplicated.count), unexpected \(check.unexpected.count)")
                #expect(census.unreadable == 0)
                #expect(census.envelopes == Self.count)
                #expect(check.missing.isEmpty, "missing: \(check.missing.prefix(10))")
                #expect(check.duplicated.isEmpty, "duplicated: \(check.duplicated.prefix(10))")
                #expect(check.unexpected.isEmpty, "unexpected: \(check.unexpected.prefix(10))")
                // Every .env has its .msg.
                let messages = herald.spoolFiles("queue").filter { $0.hasSuffix(".msg") }.count
                #expect(messages == Self.count)
                let recorded = try await CampaignIT.sql(database,
                    "SELECT count(*), count(DISTINCT subscriber_id) FROM campaign_recipients WHERE campaign_id = \(campaign)")
                #expect(recorded == "\(Self.count)|\(Self.count)")
            }
        }

        /// Without help (no aging of the dead process's claims), a restarted Herald leaves
        /// the chunk the killed one held: `claim` skips it for `claimTimeout` (300 s, not
        /// configurable), `run` ends when nothing else is claimable, and nothing retries it
        /// later (`resumeAll` runs only at start-up), so the campaign stays `sending` with
        /// that chunk unexpanded until a restart more than 300 s later.
        @Test("after SIGKILL and restart, the campaign finishes without outside help")
        func finishesAfterRestartUnaided() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "campaign_crash_unaided")
            let httpPort = try HeraldProcess.freeLoopbackPort()
            let options = CampaignIT.options(database: database, httpPort: httpPort, delivery: false)
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let api = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "acme"))
                let list = try await api.createList("crash")
                let csv = herald.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: Self.count, domain: Self.domain, to: csv)
                _ = try await api.importCSV(list: list, path: csv)
                let campaign = try await api.createCampaign(list: list, name: "crash")
                try await api.send(campaign: campaign)
                // Kill once the first chunk is done, so that the next one is (almost surely) claimed.
                let chunkDone = "SELECT count(*) FROM campaign_chunks WHERE campaign_id = \(campaign) AND done"
                _ = try await DeliveryIT.waitUntil(timeout: 30) { try await CampaignIT.sql(database, chunkDone) != "0" }
                await herald.kill()
                let held = try await CampaignIT.sql(database, """
                    SELECT count(*) FROM campaign_chunks WHERE campaign_id = \(campaign) AND NOT done AND claimed_by IS NOT NULL
                    """)
                print("campaign crash (unaided): killed with \(held) chunk(s) claimed and not done")
                try await herald.restart()
                _ = try await herald.httpPort()
                let stats = try await api.waitUntilExpanded(campaign: campaign, timeout: 20)
                print("campaign crash (unaided): 20 s after restart: \(stats)")
                // The restarted node takes back the chunk it held (same node name: host + spool).
                #expect(stats["status"] as? String == "sending")
                #expect(stats["expanded"] as? Int == Self.count)
            }
        }
    }
}
