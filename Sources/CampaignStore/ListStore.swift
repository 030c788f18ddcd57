import Foundation
import Postgres

/// A mailing list of one tenant.
public struct MailingList: Sendable, Equatable, Codable {
    public var id: Int64
    public var name: String
    public var createdAt: Date
    public var updatedAt: Date
    /// Members of the list (any status); filled by the read methods.
    public var subscriberCount: Int
}

/// Lists. Every method is scoped to a tenant: another tenant's list id behaves exactly
/// like an id that does not exist (nil / false), so a caller cannot tell them apart and
/// nothing leaks.
public struct ListStore: Sendable {
    public let db: PostgresClient

    public init(_ db: PostgresClient) {
        self.db = db
    }

    static let columns = """
        l.id, l.name, l.created_at, l.updated_at,
        (SELECT count(*) FROM list_members m WHERE m.tenant_id = l.tenant_id AND m.list_id = l.id)
        """

    public func createList(tenant: TenantID, name: String) async throws -> MailingList {
        let name = try NameRules.validate(name, what: "list name", limit: 500)
        let rows = try await db.query("""
            INSERT INTO lists AS l (tenant_id, name) VALUES ($1, $2) RETURNING \(Self.columns)
            """, [tenant.parameter, name])
        return try Self.list(rows[0])
    }

    public func list(tenant: TenantID, id: Int64) async throws -> MailingList? {
        try await db.query("SELECT \(Self.columns) FROM lists l WHERE l.tenant_id = $1 AND l.id = $2",
                           [tenant.parameter, String(id)]).first.map(Self.list)
    }

    /// The tenant's lists in id order, `limit` at a time after the id `after`.
    public func lists(tenant: TenantID, after: Int64? = nil, limit: Int = 100) async throws -> [MailingList] {
        try await db.query("""
            SELECT \(Self.columns) FROM lists l
            WHERE l.tenant_id = $1 AND l.id > $2 ORDER BY l.id LIMIT $3
            """, [tenant.parameter, String(after ?? 0), String(max(1, min(limit, 1000)))]).map(Self.list)
    }

    public func renameList(tenant: TenantID, id: Int64, name: String) async throws -> MailingList? {
        let name = try NameRules.validate(name, what: "list name", limit: 500)
        return try await db.query("""
            UPDATE lists AS l SET name = $3, updated_at = now()
            WHERE l.tenant_id = $1 AND l.id = $2 RETURNING \(Self.columns)
            """, [tenant.parameter, String(id), name]).first.map(Self.list)
    }

    /// Deletes the list and its memberships (the subscribers stay: they belong to the
    /// tenant, may be on other lists, and carry their unsubscribe history).
    /// False when there is no such list.
    @discardableResult
    public func deleteList(tenant: TenantID, id: Int64) async throws -> Bool {
        let parameters = [tenant.parameter, String(id)]
        return try await db.transaction { connection in
            // The list first: it waits for imports holding it (FOR KEY SHARE); the
            // memberships' delete then sees what they committed.
            guard try connection.execute("DELETE FROM lists WHERE tenant_id = $1 AND id = $2", parameters) == 1 else {
                return false
            }
            try connection.execute("DELETE FROM list_members WHERE tenant_id = $1 AND list_id = $2", parameters)
            return true
        }
    }

    static func list(_ row: [String?]) throws -> MailingList {
        MailingList(id: try PGText.require(row, 0, PGText.int64), name: try PGText.require(row, 1),
                    createdAt: try PGText.require(row, 2, PGText.timestamp),
                    updatedAt: try PGText.require(row, 3, PGText.timestamp),
                    subscriberCount: try PGText.require(row, 4, PGText.int))
    }
}
