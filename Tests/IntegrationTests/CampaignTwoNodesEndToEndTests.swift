import Foundation
import HeraldTestSupport
import Testing

/// Two Herald processes, each with its own spool, on one PostgreSQL database expand
/// the same campaign: they share its chunks (`FOR UPDATE SKIP LOCKED` claims), and the
/// union of their spools holds every subscriber exactly once.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct CampaignTwoNodesEndToEnd {
        static let domain = "nodes.test"
        static let count = 20_000

        @Test("two processes on one database expand one campaign: every subscriber exactly once, both take part")
        func twoNodes() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "campaign_nodes")
            let portA = try HeraldProcess.freeLoopbackPort()
            let portB = try HeraldProcess.freeLoopbackPort()
            try await HeraldProcess.with(CampaignIT.options(database: database, httpPort: portA, delivery: false)) { a in
                _ = try await a.httpPort()
                let api = CampaignIT.API(port: portA, key: try await CampaignIT.createTenant(a, "acme"))
                let list = try await api.createList("nodes")
                let csv = a.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: Self.count, domain: Self.domain, to: csv)
                let imported = try await api.importCSV(list: list, path: csv)
                #expect(imported["imported"] as? Int == Self.count)
                let campaign = try await api.createCampaign(list: list, name: "nodes")
                let t0 = Date()
                try await api.send(campaign: campaign)
                // B starts while A expands: its start-up resumeAll() finds the campaign
                // `sending` and claims the chunks A has not claimed yet.
                try await HeraldProcess.with(CampaignIT.options(database: database, httpPort: portB, delivery: false)) { b in
                    _ = try await b.httpPort()
                    let started = -t0.timeIntervalSinceNow
                    let stats = try await api.waitUntilExpanded(campaign: campaign, timeout: 120)
                    let took = -t0.timeIntervalSinceNow
                    #expect(stats["status"] as? String == "sending", "\(stats)\n\(a.diagnostics())\n\(b.diagnostics())")
                    #expect(stats["expanded"] as? Int == Self.count)
                    let chunks = try await CampaignIT.sql(database, """
                        SELECT string_agg(claimed_by || ':' || n, ' ') FROM (SELECT claimed_by, count(*) n FROM campaign_chunks
                        WHERE campaign_id = \(campaign) GROUP BY claimed_by) x
                        """)
                    let censusA = CampaignIT.spoolCensus(a), censusB = CampaignIT.spoolCensus(b)
                    var union = censusA.byRecipient
                    for (k, v) in censusB.byRecipient { union[k, default: 0] += v }
                    let expected = Set((0..<Self.count).map { CampaignIT.address($0, domain: Self.domain) })
                    let check = CampaignIT.check(union, expected: expected)
                    print("campaign nodes: B up \(String(format: "%.2f", started)) s after send; sent after \(String(format: "%.2f", took)) s; A spooled \(censusA.envelopes), B spooled \(censusB.envelopes); chunks by node: \(chunks); missing \(check.missing.count), duplicates \(check.duplicated.count), unexpected \(check.unexpected.count)")
                    #expect(censusA.envelopes > 0, "A spooled nothing")
                    #expect(censusB.envelopes > 0, "B spooled nothing: it did not join the running campaign")
                    #expect(censusA.envelopes + censusB.envelopes == Self.count)
                    #expect(check.missing.isEmpty, "missing: \(check.missing.prefix(10))")
                    #expect(check.duplicated.isEmpty, "duplicated: \(check.duplicated.prefix(10))")
                    #expect(check.unexpected.isEmpty, "unexpected: \(check.unexpected.prefix(10))")
                    let recorded = try await CampaignIT.sql(database,
                        "SELECT count(*), count(DISTINCT subscriber_id) FROM campaign_recipients WHERE campaign_id = \(campaign)")
                    #expect(recorded == "\(Self.count)|\(Self.count)")
                }
            }
        }
    }
}
