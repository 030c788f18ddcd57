import Foundation
import Postgres

/// Why an address is suppressed (the `suppressions.reason` column).
public enum SuppressionReason: String, Sendable, Codable, CaseIterable, Equatable {
    case unsubscribed, bounced, complained, manual
}

/// One suppressed address of a tenant: never mailed again, whatever list it is on.
public struct Suppression: Sendable, Equatable {
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
            SELECT email, reason, campaign_id, created_at FROM suppressions WHERE tenant_id = $1 AND email = $2
            """, [tenant.parameter, email]).first.map(Self.suppression)
    }

    /// Suppresses an address by hand (or for a bounce or complaint); an existing
    /// suppression is kept. Returns true when the address was not suppressed before.
    @discardableResult
    public func suppress(tenant: TenantID, email: String, reason: SuppressionReason, campaignID: Int64? = nil)
        async throws -> Bool
    {
        let email = try SubscriberAddress.normalize(email).get()
        return try await db.execute("""
            INSERT INTO suppressions (tenant_id, email, reason, campaign_id) VALUES ($1, $2, $3, $4)
            ON CONFLICT (tenant_id, email) DO NOTHING
            """, [tenant.parameter, email, reason.rawValue, campaignID.map(String.init)]) == 1
    }

    static func suppression(_ row: [String?]) throws -> Suppression {
        Suppression(email: try PGText.require(row, 0), reason: try PGText.require(row, 1, SuppressionReason.init(rawValue:)),
                    campaignID: row[2].flatMap { Int64($0) }, createdAt: try PGText.require(row, 3, PGText.timestamp))
    }
}
