import Foundation
import HeraldTestSupport
import Testing

@testable import CampaignStore
@testable import Postgres

/// A stored value that does not read is an error naming the column, never a default
/// (0, "", 1970, `draft`, a campaign without its segment).
@Suite("Reading rows", .enabled(if: PostgresServer.isAvailable))
struct StoreRowDecodingTests {
    @Test func unreadableCampaignColumnsAreErrors() async throws {
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let list = try await ListStore(db).createList(tenant: tenant.id, name: "News")
            let campaigns = CampaignStore(db)
            let campaign = try await campaigns.create(tenant: tenant.id, CampaignInput(
                name: "Spring", from: "news@example.org", subject: "Hi", text: "Hello", listIDs: [list.id]))
            #expect(try await campaigns.campaign(tenant: tenant.id, id: campaign.id) == campaign)

            // A segment saved before a rule it breaks: not silently dropped.
            try await db.execute("UPDATE campaigns SET segment = '[1]' WHERE id = $1", [String(campaign.id)])
            await #expect(throws: PGDecodingError(column: 14, type: "Segment", wasNull: false)) {
                try await campaigns.campaign(tenant: tenant.id, id: campaign.id)
            }
            // A send window that does not decode: not a campaign without one.
            try await db.execute("""
                UPDATE campaigns SET segment = NULL, send_window = '{"start": 9}' WHERE id = $1
                """, [String(campaign.id)])
            await #expect(throws: PGDecodingError(column: 16, type: "CampaignSendWindow", wasNull: false)) {
                try await campaigns.campaign(tenant: tenant.id, id: campaign.id)
            }
        }
    }

    @Test func requireAndOptional() throws {
        let row: [String?] = ["12", nil, "x", "t", "2026-11-24 01:05:45.5+00"]
        #expect(try PGText.require(row, 0, PGText.int64) == 12)
        #expect(throws: PGDecodingError(column: 1, type: "Int64", wasNull: true)) { try PGText.require(row, 1, PGText.int64) }
        #expect(throws: PGDecodingError(column: 2, type: "Int64", wasNull: false)) { try PGText.require(row, 2, PGText.int64) }
        #expect(throws: PGDecodingError(column: 1, type: "text", wasNull: true)) { try PGText.require(row, 1) }
        #expect(try PGText.require(row, 3, PGText.boolean) == true)
        #expect(throws: PGDecodingError.self) { try PGText.require(row, 2, PGText.boolean) }
        #expect(try PGText.require(row, 4, PGText.timestamp) == Date(timeIntervalSince1970: 1_795_482_345.5))
        #expect(try PGText.optional(row, 1, PGText.int64) == nil)
        #expect(try PGText.optional(row, 0, PGText.int64) == 12)
        #expect(throws: PGDecodingError(column: 2, type: "Int64", wasNull: false)) {
            try PGText.optional(row, 2, PGText.int64)
        }
    }
}
