import Foundation
import Postgres

/// Opens and clicks of campaign messages (issue #14): recorded from the signed tracking
/// links (``Rendering/TrackingToken``), counted per campaign and per link. Only the
/// campaign, the subscriber, the kind, the link and the time are kept: no IP address,
/// no user agent.
public struct TrackingStore: Sendable {
    public let db: PostgresClient

    public init(_ db: PostgresClient) { self.db = db }

    public enum Kind: String, Sendable { case open, click }

    /// Records one open or click of the tenant's campaign; false when there is no such
    /// campaign for that tenant (deleted since), or it does not track that kind. The
    /// `opened` / `clicked` webhook event commits with it.
    @discardableResult
    public func record(_ kind: Kind, tenant: TenantID, campaign: Int64, subscriber: Int64, url: String?) async throws -> Bool {
        let column = kind == .open ? "track_opens" : "track_clicks"
        return try await db.transaction { connection in
            guard let row = try connection.query("""
                WITH i AS (
                    INSERT INTO tracking_events (tenant_id, campaign_id, subscriber_id, kind, url)
                    SELECT c.tenant_id, c.id, $3, $4, $5 FROM campaigns c
                    WHERE c.tenant_id = $1 AND c.id = $2 AND c.\(column)
                    RETURNING id
                )
                SELECT i.id, s.email FROM i LEFT JOIN subscribers s ON s.tenant_id = $1 AND s.id = $3
                """, [tenant.parameter, String(campaign), String(subscriber), kind.rawValue, url]).rows.first
            else { return false }
            var data: [String: WebhookValue] = ["campaign_id": .int(campaign), "subscriber_id": .int(subscriber)]
            if let email = row[1] { data["email"] = .string(email) }
            if let url { data["url"] = .string(url) }
            try WebhookStore.enqueue(connection, [WebhookEvent(
                tenant: tenant, type: kind == .open ? .opened : .clicked,
                key: "\(kind.rawValue):\(try PGText.require(row, 0))", data: data, occurredAt: Date())])
            return true
        }
    }

    public struct Link: Sendable, Equatable {
        public var url: String
        public var clicks: Int64
        public var uniqueClicks: Int64
    }

    /// Clicks per link of the tenant's campaign, most clicked first (at most `limit`).
    public func links(tenant: TenantID, campaign: Int64, limit: Int = 1000) async throws -> [Link] {
        try await db.query("""
            SELECT url, count(*), count(DISTINCT subscriber_id) FROM tracking_events
            WHERE tenant_id = $1 AND campaign_id = $2 AND kind = 'click'
            GROUP BY url ORDER BY count(*) DESC, url LIMIT $3
            """, [tenant.parameter, String(campaign), String(max(1, min(limit, 1000)))]).map { row in
            Link(url: try PGText.require(row, 0), clicks: try PGText.require(row, 1, PGText.int64),
                 uniqueClicks: try PGText.require(row, 2, PGText.int64))
        }
    }
}
