import Foundation
import Postgres

/// A running campaign's counters, as `/metrics` shows them.
public struct CampaignProgress: Sendable, Equatable {
    public var id: Int64
    public var status: CampaignStatus
    /// Recipients the campaign was sent to (0 until its expansion starts).
    public var total: Int64
    public var expanded: Int64
    public var sent: Int64
    public var bounced: Int64
    public var failed: Int64
    public var deferred: Int64
}

extension CampaignStore {
    /// The counters of the campaigns that are running (`sending` or `paused`), across
    /// tenants, the `limit` most recently started first: `/metrics` keeps one series per
    /// running campaign, so a finished campaign's series end and their number stays bounded.
    public func runningCampaigns(limit: Int) async throws -> [CampaignProgress] {
        try await db.query("""
            SELECT c.id, c.status, coalesce(n.total, 0), coalesce(n.expanded, 0), coalesce(n.sent, 0),
                   coalesce(n.bounced, 0), coalesce(n.failed, 0), coalesce(n.deferred, 0)
            FROM campaigns c LEFT JOIN campaign_counters n ON n.campaign_id = c.id
            WHERE c.status IN ('sending', 'paused')
            ORDER BY c.started_at DESC NULLS LAST, c.id DESC
            LIMIT $1
            """, [String(max(0, limit))]).map { row in
            func n(_ i: Int) throws -> Int64 { try PGText.require(row, i, PGText.int64) }
            return CampaignProgress(
                id: try n(0), status: try PGText.require(row, 1, CampaignStatus.init(rawValue:)), total: try n(2),
                expanded: try n(3), sent: try n(4), bounced: try n(5), failed: try n(6), deferred: try n(7))
        }
    }
}
