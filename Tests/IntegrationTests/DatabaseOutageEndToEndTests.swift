import Foundation
import HeraldTestSupport
import Testing

/// PostgreSQL taken down (SIGQUIT: clients cut off, crash recovery at the next start)
/// and brought back while Herald works: during a campaign's expansion and while its
/// delivery outcomes are being recorded, and during a CSV import. Afterwards every
/// recipient has exactly one message at the sink, none is missing, and the counters
/// add up to the recipients; the import that met the outage is refused with a problem,
/// and the same import afterwards is complete.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(5)), .enabled(if: PostgresServer.isAvailable))
    struct DatabaseOutage {
        @Test("PostgreSQL down during expansion and stats recording: no duplicate, no gap, counters right")
        func outageDuringCampaign() async throws {
            let pg = try await PostgresServer.start()
            defer { pg.stop() }
            let database = try await pg.createDatabase(prefix: "outage")
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let httpPort = try HeraldProcess.freeLoopbackPort()
            let options = CampaignIT.options(database: database, httpPort: httpPort, delivery: true, toml: [
                DeliveryIT.route("*.outage.test", port: sink.port), DeliveryIT.route("campaign.test", port: sink.port),
            ])
            let count = 3000
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let api = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "acme"))
                let list = try await api.createList("outage")
                let csv = herald.directory + "/list.csv"
                try CampaignIT.writeCSV(count: count, domain: "outage.test", to: csv)
                _ = try await api.importCSV(list: list, path: csv)
                let campaign = try await api.createCampaign(list: list, name: "outage")
                try await api.send(campaign: campaign)
                // Down while the first messages are expanded and delivered.
                _ = await DeliveryIT.waitUntil(timeout: 30) { sink.index().count >= 50 }
                let atOutage = sink.index().count
                pg.pause()
                try await Task.sleep(for: .seconds(4))
                let duringOutage = sink.index().count
                try await pg.resume()
                print("database outage: \(atOutage) messages at the sink when PostgreSQL went down, "
                      + "\(duringOutage) when it came back (4 s later)")
                let stats = try await api.waitUntilSent(campaign: campaign, timeout: 150)
                #expect(stats["status"] as? String == "sent", "\(stats)\n\(herald.diagnostics())")
                #expect(stats["sent"] as? Int == count, "\(stats)")
                #expect(stats["remaining"] as? Int == 0, "\(stats)")
                #expect(stats["expanded"] as? Int == count, "\(stats)")
                // Exactly one message per recipient at the sink.
                _ = await sink.waitForMessages(count, timeout: 30)
                var perRecipient: [String: Int] = [:]
                for entry in sink.index() {
                    for r in entry.rcpts { perRecipient[r, default: 0] += 1 }
                }
                let expected = Set((0..<count).map { CampaignIT.address($0, domain: "outage.test") })
                #expect(Set(perRecipient.keys) == expected, "missing: \(expected.subtracting(perRecipient.keys).count)")
                let duplicates = perRecipient.filter { $0.value > 1 }
                #expect(duplicates.isEmpty, "\(duplicates.count) recipients got more than one message")
                let rows = try await CampaignIT.sql(database, """
                    SELECT count(*), count(*) FILTER (WHERE state = 'sent') FROM campaign_recipients
                    WHERE campaign_id = \(campaign)
                    """)
                #expect(rows == "\(count)|\(count)")
            }
        }

        @Test("PostgreSQL down during a CSV import: a problem, nothing half-imported; the same import afterwards is complete")
        func outageDuringImport() async throws {
            let pg = try await PostgresServer.start()
            defer { pg.stop() }
            let database = try await pg.createDatabase(prefix: "outageimport")
            let httpPort = try HeraldProcess.freeLoopbackPort()
            let options = CampaignIT.options(database: database, httpPort: httpPort, delivery: false)
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let api = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "acme"))
                let list = try await api.createList("import")
                let csv = herald.directory + "/list.csv"
                let count = 300_000
                try CampaignIT.writeCSV(count: count, domain: "import.test", to: csv)
                // The import runs while the database goes down under it.
                async let reply = CampaignIT.http("POST", api.base + "/v1/lists/\(list)/import", key: api.key,
                                                  contentType: "text/csv", body: "@" + csv)
                try await Task.sleep(for: .milliseconds(300))
                pg.pause()
                let failed = try await reply
                try await pg.resume()
                #expect(failed.status == 503 || failed.status == 200, "\(failed.status) \(failed.text.prefix(500))")
                let imported = try await CampaignIT.sql(database, "SELECT count(*) FROM subscribers")
                print("database outage during an import: HTTP \(failed.status), \(imported) of \(count) rows in the table")
                if failed.status != 200 {
                    #expect(failed.contentType == "application/problem+json")
                    #expect(imported == "0", "a failed import leaves nothing: \(imported)")
                }
                // Afterwards the same import completes (Herald reconnects by itself).
                let again = await DeliveryIT.waitUntil(timeout: 60) {
                    (try? await api.importCSV(list: list, path: csv)) != nil
                }
                #expect(again, "\(herald.diagnostics())")
                #expect(try await CampaignIT.sql(database, "SELECT count(*) FROM subscribers") == "\(count)")
                #expect(try await CampaignIT.sql(database, "SELECT count(*) FROM list_members WHERE list_id = \(list)")
                        == "\(count)")
            }
        }
    }
}
