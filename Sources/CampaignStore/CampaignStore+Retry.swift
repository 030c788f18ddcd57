import Foundation

extension CampaignStore {
    /// `retry-failed`: sends the campaign again to its recipients whose delivery failed
    /// (`campaign_recipients.state` `bounced` or `failed`) and who are still recipients
    /// (active, on one of its lists, in its segment, not suppressed: a hard bounce
    /// suppressed its address, so it is not retried). One transaction:
    /// - those rows become `pending` (queue id and reason cleared), and leave the
    ///   `bounced`/`failed`/`expanded` counters;
    /// - they are planned as new chunks marked `retry`, with `id_time` = now, so the new
    ///   messages get queue ids of their own (not the failed ones');
    /// - the campaign goes back to `sending` (from `sent`); the expander then works
    ///   these chunks like any other, with the same checkpoint and replay rules.
    /// Returns the campaign and how many recipients were re-planned (0 changes nothing).
    /// nil when there is no such campaign; `.conflict` unless it is `sent` or `sending`,
    /// or while an earlier retry is still being expanded.
    public func retryFailed(tenant: TenantID, id: Int64) async throws -> (Campaign, Int)? {
        let t = tenant.parameter
        let c = String(id)
        let chunkSize = String(self.chunkSize)
        let result: Result<([String?], Int), StoreError>? = try await db.transaction { connection in
            guard let row = try connection.query("""
                SELECT \(Self.columns) FROM campaigns c WHERE c.tenant_id = $1 AND c.id = $2 FOR UPDATE
                """, [t, c]).rows.first
            else { return nil }
            let current = try Self.campaign(row)
            guard current.status == .sent || current.status == .sending else {
                return .failure(StoreError(.conflict, "campaign \(id) is \(current.status.rawValue); only a sent "
                                                + "or sending campaign can retry its failed recipients"))
            }
            if try connection.query("""
                SELECT 1 FROM campaign_chunks WHERE campaign_id = $1 AND retry AND NOT done LIMIT 1
                """, [c]).rows.first != nil {
                return .failure(StoreError(.conflict, "campaign \(id) is still expanding an earlier retry; "
                                                + "try again when its stats show it sent"))
            }
            let marked = try connection.query("""
                UPDATE campaign_recipients AS r SET state = 'pending', queue_id = NULL, reason = NULL, updated_at = now()
                FROM (SELECT r.subscriber_id, r.state FROM campaign_recipients r
                      WHERE r.tenant_id = $1 AND r.campaign_id = $2 AND r.state IN ('bounced', 'failed')
                        AND r.subscriber_id IN (\(Self.recipientsSQL(tenant: "$1", lists: "c.list_ids")) AND c.id = $2)
                      FOR UPDATE OF r) old
                WHERE r.campaign_id = $2 AND r.subscriber_id = old.subscriber_id
                RETURNING old.state
                """, [t, c]).rows
            guard !marked.isEmpty else { return .success((row, 0)) }
            let bounced = marked.count(where: { $0[0] == "bounced" })
            let failed = marked.count - bounced
            try connection.execute("""
                WITH numbered AS (
                    SELECT subscriber_id AS id, (row_number() OVER (ORDER BY subscriber_id) - 1) / $3::bigint AS n
                    FROM campaign_recipients WHERE campaign_id = $2 AND state = 'pending'
                ), base AS (SELECT coalesce(max(chunk_no), -1) + 1 AS b FROM campaign_chunks WHERE campaign_id = $2)
                INSERT INTO campaign_chunks (tenant_id, campaign_id, chunk_no, first_subscriber_id, last_subscriber_id,
                                             retry, id_time)
                SELECT $1, $2, base.b + numbered.n, min(numbered.id), max(numbered.id), true, now()
                FROM numbered, base GROUP BY numbered.n, base.b
                """, [t, c, chunkSize])
            try connection.execute("""
                UPDATE campaign_counters SET expanded = greatest(expanded - $2, 0), bounced = greatest(bounced - $3, 0),
                    failed = greatest(failed - $4, 0), updated_at = now()
                WHERE campaign_id = $1
                """, [c, String(marked.count), String(bounced), String(failed)])
            let updated = try connection.query("""
                UPDATE campaigns AS c SET status = 'sending', finished_at = NULL, updated_at = now()
                WHERE c.tenant_id = $1 AND c.id = $2 RETURNING \(Self.columns)
                """, [t, c]).rows[0]
            return .success((updated, marked.count))
        }
        guard let result else { return nil }
        let (row, count) = try result.get()
        return (try Self.campaign(row), count)
    }
}
