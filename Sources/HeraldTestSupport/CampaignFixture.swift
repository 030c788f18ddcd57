import Campaigns
import CampaignStore
import Foundation
import Postgres
import Spool

/// A fresh database with tenant A, a list of `count` subscribers (every 10th
/// unsubscribed, every 15th suppressed, the first 200 also on a second list), and a
/// throw-away spool.
public struct CampaignFixture: Sendable {
    public let url: String
    public let db: PostgresClient
    public let tenant: TenantID
    public let lists: [Int64]
    public let spool: Spool
    public let directory: String
    public let count: Int

    public static let secret = Array("campaign-test-unsubscribe-secret".utf8)
    public static let publicURL = "https://mail.example.test/"

    public static func with(count: Int = 1000, _ body: (CampaignFixture) async throws -> Void) async throws {
        let url = try await StoreTestDB.freshURL()
        let db = PostgresClient(url: url, size: 4)
        let directory = NSTemporaryDirectory() + "herald-campaign-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            try await Migrator.migrate(db)
            let (tenant, _) = try await StoreTestDB.tenant(db, "tenant-a")
            let listStore = ListStore(db)
            let one = try await listStore.createList(tenant: tenant.id, name: "main").id
            let two = try await listStore.createList(tenant: tenant.id, name: "vip").id
            let t = tenant.id.description
            try await db.execute("""
                INSERT INTO subscribers (tenant_id, email, first_name, last_name, attributes, status)
                SELECT $1, 'user' || n || '@example.com', 'First' || n, 'Last' || n,
                       jsonb_build_object('plan', 'plan' || n),
                       CASE WHEN n % 10 = 0 THEN 'unsubscribed' ELSE 'active' END
                FROM generate_series(1, $2::int) n
                """, [t, String(count)])
            try await db.execute("""
                INSERT INTO list_members (tenant_id, list_id, subscriber_id)
                SELECT $1, $2, id FROM subscribers WHERE tenant_id = $1
                """, [t, String(one)])
            try await db.execute("""
                INSERT INTO list_members (tenant_id, list_id, subscriber_id)
                SELECT $1, $2, id FROM subscribers WHERE tenant_id = $1 AND id <= (SELECT min(id) + 199 FROM subscribers)
                """, [t, String(two)])
            try await db.execute("""
                INSERT INTO suppressions (tenant_id, email, reason)
                SELECT $1, 'user' || n || '@example.com', 'manual' FROM generate_series(15, $2::int, 15) n
                """, [t, String(count)])
            let fixture = CampaignFixture(url: url, db: db, tenant: tenant.id, lists: [one, two],
                                          spool: try Spool(path: directory), directory: directory, count: count)
            try await body(fixture)
            await db.close()
        } catch {
            await db.close()
            throw error
        }
    }

    /// The emails expansion must reach: active and not suppressed.
    public var expected: Set<String> {
        Set((1...count).filter { $0 % 10 != 0 && $0 % 15 != 0 }.map { "user\($0)@example.com" })
    }

    public func expander(_ db: PostgresClient? = nil, node: String = "test-node", claimTimeout: TimeInterval = 300)
        -> CampaignExpander
    {
        CampaignExpander(db: db ?? self.db, writer: SpoolWriter(spool: spool), publicURL: Self.publicURL,
                         secret: Self.secret, hostname: "herald.test", node: node, claimTimeout: claimTimeout)
    }

    public func createCampaign(_ name: String = "Spring") async throws -> Campaign {
        try await CampaignStore(db).create(tenant: tenant, CampaignInput(
            name: name, from: "News <news@example.org>", subject: "Hi {{first_name}}",
            html: "<p>Hello {{first_name}} {{last_name}}!</p><p>Plan: {{attributes.plan}}</p>"
                + "<p><a href=\"{{unsubscribe_url}}\">unsubscribe</a></p>",
            text: "Hello {{first_name}} {{last_name}}!\nPlan: {{attributes.plan}}\nUnsubscribe: {{unsubscribe_url}}\n",
            listIDs: lists))
    }

    /// Envelopes in the spool for one campaign.
    public func spooled(campaign: Int64) throws -> [Envelope] {
        try spool.enumerate(.queue).map { try spool.loadEnvelope($0, in: .queue) }
            .filter { $0.campaign == String(campaign) }
    }

    public func int(_ sql: String, _ parameters: [String?] = []) async throws -> Int {
        Int(try await db.query(sql, parameters)[0][0] ?? "") ?? -1
    }
}
