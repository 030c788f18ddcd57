import Foundation
import Postgres

/// Why an address is suppressed (the `suppressions.reason` column).
public enum SuppressionReason: String, Sendable, Codable, CaseIterable, Equatable {
    case unsubscribed, bounced, complained, manual
}

/// One suppressed address of a tenant: never mailed again, whatever list it is on.
public struct Suppression: Sendable, Equatable {
    /// The tenant's suppressions are numbered in the order they were made (the cursor of
    /// ``SuppressionStore/suppressions(tenant:reason:after:limit:)``).
    public var id: Int64
    public var email: String
    public var reason: SuppressionReason
    public var campaignID: Int64?
    public var createdAt: Date
}

/// What ``SuppressionStore/unsubscribe(tenant:subscriberID:campaignID:)`` did.
public struct UnsubscribeOutcome: Sendable, Equatable {
    /// The subscriber's address; nil when the tenant has no such subscriber (deleted).
    public var email: String?
    /// True when this call changed the subscriber's status (false on a repeat).
    public var changed: Bool
}

/// The per-tenant suppression list (`suppressions`), scoped like the other stores.
public struct SuppressionStore: Sendable {
    public let db: PostgresClient

    public init(_ db: PostgresClient) {
        self.db = db
    }

    /// Unsubscribes the subscriber in one transaction: an `active` subscriber becomes
    /// `unsubscribed` (a `bounced` or `complained` one keeps that stronger status), and
    /// the address is suppressed for the tenant with reason `unsubscribed` (an existing
    /// suppression is kept as it is). When the status changed and `campaignID` names one
    /// of the tenant's campaigns, its `unsubscribed` counter goes up by one.
    /// Idempotent: a repeat changes nothing and reports `changed == false`.
    public func unsubscribe(tenant: TenantID, subscriberID: Int64, campaignID: Int64?) async throws
        -> UnsubscribeOutcome
    {
        let parameters: [String?] = [tenant.parameter, String(subscriberID), campaignID.map(String.init)]
        return try await db.transaction { connection in
            // FOR UPDATE: two concurrent unsubscribes of one subscriber count once.
            guard let row = try connection.query(
                "SELECT email, status FROM subscribers WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
                [parameters[0], parameters[1]]).rows.first
            else { return UnsubscribeOutcome(email: nil, changed: false) }
            let email = try PGText.require(row, 0)
            let changed = row[1] == SubscriberStatus.active.rawValue
            if changed {
                try connection.execute("""
                    UPDATE subscribers SET status = 'unsubscribed', updated_at = now()
                    WHERE tenant_id = $1 AND id = $2
                    """, [parameters[0], parameters[1]])
                // Committed with the change it reports (a repeat changes nothing, sends nothing).
                var data: [String: WebhookValue] = ["subscriber_id": .int(subscriberID), "email": .string(email)]
                if let campaignID { data["campaign_id"] = .int(campaignID) }
                try WebhookStore.enqueue(connection, [WebhookEvent(
                    tenant: tenant, type: .unsubscribed, key: "unsubscribed:\(subscriberID):\(UUID().uuidString)",
                    data: data, occurredAt: Date())])
                if parameters[2] != nil {
                    try connection.execute("""
                        UPDATE campaign_counters SET unsubscribed = unsubscribed + 1, updated_at = now()
                        WHERE tenant_id = $1 AND campaign_id = $2
                        """, [parameters[0], parameters[2]])
                }
            }
            // The campaign id is kept only when it is the tenant's (no reference to
            // another tenant's campaign can be planted with a token).
            try connection.execute("""
                INSERT INTO suppressions (tenant_id, email, reason, campaign_id)
                VALUES ($1, $2, 'unsubscribed',
                        (SELECT id FROM campaigns WHERE tenant_id = $1 AND id = $3::bigint))
                ON CONFLICT (tenant_id, email) DO NOTHING
                """, [parameters[0], email, parameters[2]])
            return UnsubscribeOutcome(email: email, changed: changed)
        }
    }

    /// The suppression of this address (any case), if any.
    public func suppression(tenant: TenantID, email: String) async throws -> Suppression? {
        guard case .success(let email) = SubscriberAddress.normalize(email) else { return nil }
        return try await db.query("""
            SELECT \(Self.columns) FROM suppressions WHERE tenant_id = $1 AND email = $2
            """, [tenant.parameter, email]).first.map(Self.suppression)
    }

    static let columns = "email, reason, campaign_id, created_at, id"

    /// A page of the tenant's suppressions in the order they were made, after the one
    /// numbered `after`, optionally of one reason.
    public func suppressions(tenant: TenantID, reason: SuppressionReason?, after: Int64?, limit: Int) async throws
        -> [Suppression]
    {
        try await db.query("""
            SELECT \(Self.columns) FROM suppressions
            WHERE tenant_id = $1 AND id > $2 AND ($3::text IS NULL OR reason = $3)
            ORDER BY id LIMIT $4
            """, [tenant.parameter, String(after ?? 0), reason?.rawValue, String(limit)]).map(Self.suppression)
    }

    /// Suppresses `email` (``StoreError`` `.invalid` when it is not an address): the new
    /// suppression and true, or the one that existed (kept as it is) and false.
    public func add(tenant: TenantID, email: String, reason: SuppressionReason) async throws
        -> (suppression: Suppression, created: Bool)
    {
        let given = email
        let email: String
        switch SubscriberAddress.normalize(given) {
        case .success(let normalized): email = normalized
        case .failure(let error): throw StoreError(.invalid, "email: \"\(given)\" is not a valid address (\(error.message))")
        }
        // One statement: the conflict arm rewrites nothing (the same email) but returns the
        // existing row, so there is no window in which it could vanish between two queries.
        // `xmax = 0` only for a row this statement inserted.
        let row = try await db.query("""
            INSERT INTO suppressions (tenant_id, email, reason) VALUES ($1, $2, $3)
            ON CONFLICT (tenant_id, email) DO UPDATE SET email = excluded.email
            RETURNING \(Self.columns), xmax = 0
            """, [tenant.parameter, email, reason.rawValue])[0]
        return (try Self.suppression(row), try PGText.require(row, 5, PGText.boolean))
    }

    /// Lifts the suppression of `email`; false when there was none. The subscriber's own
    /// status (unsubscribed, bounced, complained) is not changed.
    public func remove(tenant: TenantID, email: String) async throws -> Bool {
        guard case .success(let email) = SubscriberAddress.normalize(email) else { return false }
        return try await db.execute("DELETE FROM suppressions WHERE tenant_id = $1 AND email = $2",
                                    [tenant.parameter, email]) == 1
    }

    /// Which of `emails` (any case) the tenant suppresses, by normalised address.
    public func suppressed(tenant: TenantID, among emails: [String]) async throws -> [String: SuppressionReason] {
        let normalized = emails.compactMap { try? SubscriberAddress.normalize($0).get() }
        guard !normalized.isEmpty else { return [:] }
        var found: [String: SuppressionReason] = [:]
        for row in try await db.query("""
            SELECT email, reason FROM suppressions WHERE tenant_id = $1 AND email = ANY ($2::text[])
            """, [tenant.parameter, PGText.textArray(normalized)]) {
            found[try PGText.require(row, 0)] = try PGText.require(row, 1, SuppressionReason.init(rawValue:))
        }
        return found
    }

    static func suppression(_ row: [String?]) throws -> Suppression {
        Suppression(id: try PGText.require(row, 4, PGText.int64), email: try PGText.require(row, 0),
                    reason: try PGText.require(row, 1, SuppressionReason.init(rawValue:)),
                    campaignID: try PGText.optional(row, 2, PGText.int64),
                    createdAt: try PGText.require(row, 3, PGText.timestamp))
    }
}
