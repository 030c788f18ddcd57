import Foundation
import Postgres

/// One failed recipient of a campaign (`GET /v1/campaigns/{id}/failures`).
public struct CampaignFailure: Sendable, Equatable {
    public var subscriberID: Int64
    public var email: String?
    /// `bounced` or `failed` (the recipient's outcome), or, when no outcome was recorded
    /// for the recipient, the subscriber's own status (`bounced`, `complained`).
    public var state: String
    public var reason: String?
    public var queueID: String?
    public var updatedAt: Date?
}

extension CampaignStore {
    /// The campaign's failed recipients in subscriber-id order, `limit` at a time after
    /// subscriber id `after`. nil when there is no such campaign for the tenant.
    ///
    /// A recipient failed when its `campaign_recipients.state` is `bounced` or `failed`
    /// (written by delivery-outcome feedback, with the reason), or, when its state says
    /// nothing of the outcome (`queued`/`sent`), when the subscriber's status became
    /// `bounced` or `complained` since.
    public func failures(tenant: TenantID, id: Int64, after: Int64? = nil,
                         limit: Int = 100) async throws -> [CampaignFailure]? {
        guard try await campaign(tenant: tenant, id: id) != nil else { return nil }
        return try await db.query("""
            SELECT r.subscriber_id, s.email,
                   CASE WHEN r.state IN ('bounced', 'failed') THEN r.state ELSE s.status END,
                   CASE WHEN r.state IN ('bounced', 'failed') THEN r.reason
                        ELSE 'the subscriber is now ' || s.status END,
                   r.queue_id, r.updated_at
            FROM campaign_recipients r
            LEFT JOIN subscribers s ON s.tenant_id = r.tenant_id AND s.id = r.subscriber_id
            WHERE r.tenant_id = $1 AND r.campaign_id = $2 AND r.subscriber_id > $3
              AND (r.state IN ('bounced', 'failed')
                   OR (r.state IN ('queued', 'sent') AND s.status IN ('bounced', 'complained')))
            ORDER BY r.subscriber_id LIMIT $4
            """, [tenant.parameter, String(id), String(after ?? 0), String(max(1, min(limit, 1000)))]).map {
            CampaignFailure(subscriberID: try PGText.require($0, 0, PGText.int64), email: $0[1],
                            state: try PGText.require($0, 2), reason: $0[3], queueID: $0[4],
                            updatedAt: PGText.timestamp($0[5]))
        }
    }
}
