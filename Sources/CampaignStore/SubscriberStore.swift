import Foundation
import Postgres
import Rendering

public enum SubscriberStatus: String, Sendable, Codable, CaseIterable, Equatable {
    case active, unsubscribed, bounced, complained
}

/// A subscriber: one address of one tenant, on any number of the tenant's lists.
public struct Subscriber: Sendable, Equatable {
    public var id: Int64
    /// Lower-cased (``SubscriberAddress``).
    public var email: String
    public var name: String?
    public var firstName: String?
    public var lastName: String?
    /// Free-form values for templates (`{{attributes.plan}}`), a JSON object.
    public var attributes: [String: TemplateValue]
    public var status: SubscriberStatus
    public var createdAt: Date
    public var updatedAt: Date
}

/// What an add/update request carries. A nil field leaves the stored value as it is;
/// `attributes` are merged key by key into the stored ones (a key set to JSON null is
/// kept as null, not removed).
public struct SubscriberInput: Sendable, Equatable {
    public var email: String
    public var name: String?
    public var firstName: String?
    public var lastName: String?
    public var attributes: [String: TemplateValue]?
    /// nil: a new subscriber is `active`, an existing one keeps its status (so that
    /// re-adding someone who unsubscribed does not subscribe them again by accident).
    public var status: SubscriberStatus?

    public init(email: String, name: String? = nil, firstName: String? = nil, lastName: String? = nil,
                attributes: [String: TemplateValue]? = nil, status: SubscriberStatus? = nil) {
        self.email = email
        self.name = name
        self.firstName = firstName
        self.lastName = lastName
        self.attributes = attributes
        self.status = status
    }
}

/// One page of a keyset-paginated listing.
public struct SubscriberPage: Sendable, Equatable {
    public var subscribers: [Subscriber]
    /// Pass as `after` to get the next page; nil on the last page.
    public var nextCursor: Int64?
}

/// Subscribers and list membership, scoped to a tenant like ``ListStore``: another
/// tenant's subscriber or list id behaves like one that does not exist.
public struct SubscriberStore: Sendable {
    public let db: PostgresClient

    public init(_ db: PostgresClient) {
        self.db = db
    }

    static let columns = "s.id, s.email, s.name, s.first_name, s.last_name, s.attributes, s.status, s.created_at, s.updated_at"

    /// Adds the subscriber to the list, creating or updating it by email (idempotent:
    /// the same input twice leaves the same state). nil when the list does not exist
    /// for this tenant. `created` tells whether the address was new to the tenant.
    public func upsert(tenant: TenantID, listID: Int64, _ input: SubscriberInput) async throws
        -> (subscriber: Subscriber, created: Bool)?
    {
        let email = try SubscriberAddress.normalize(input.email).get()
        for (field, value) in [("name", input.name), ("first_name", input.firstName), ("last_name", input.lastName)] {
            if let value, value.utf8.count > 1000 { throw StoreError(.invalid, "\(field) is longer than 1000 octets") }
        }
        let attributes = try input.attributes.map(Self.json)
        let parameters: [String?] = [tenant.parameter, String(listID), email, input.name, input.firstName,
                                     input.lastName, attributes, input.status?.rawValue]
        return try await db.transaction { connection in
            // FOR KEY SHARE: the list cannot be deleted before the membership is in.
            guard try !connection.query("SELECT 1 FROM lists WHERE tenant_id = $1 AND id = $2 FOR KEY SHARE",
                                        [parameters[0], parameters[1]]).rows.isEmpty
            else { return nil }
            let row = try connection.query("""
                INSERT INTO subscribers AS s (tenant_id, email, name, first_name, last_name, attributes, status)
                VALUES ($1, $2, $3, $4, $5, coalesce($6::jsonb, '{}'), coalesce($7, 'active'))
                ON CONFLICT (tenant_id, email) DO UPDATE SET
                    name = coalesce($3, s.name),
                    first_name = coalesce($4, s.first_name),
                    last_name = coalesce($5, s.last_name),
                    attributes = s.attributes || coalesce($6::jsonb, '{}'),
                    status = coalesce($7, s.status),
                    updated_at = CASE WHEN (s.name, s.first_name, s.last_name, s.attributes, s.status)
                                   IS DISTINCT FROM (coalesce($3, s.name), coalesce($4, s.first_name),
                                                     coalesce($5, s.last_name), s.attributes || coalesce($6::jsonb, '{}'),
                                                     coalesce($7, s.status))
                                 THEN now() ELSE s.updated_at END
                RETURNING \(Self.columns), (xmax = 0)
                """, [parameters[0]] + parameters[2...]).rows[0]
            try connection.execute("""
                INSERT INTO list_members (tenant_id, list_id, subscriber_id) VALUES ($1, $2, $3)
                ON CONFLICT DO NOTHING
                """, [parameters[0], parameters[1], row[0]])
            return (try Self.subscriber(row), PGText.bool(row[9]))
        }
    }

    public func subscriber(tenant: TenantID, id: Int64) async throws -> Subscriber? {
        try await db.query("SELECT \(Self.columns) FROM subscribers s WHERE s.tenant_id = $1 AND s.id = $2",
                           [tenant.parameter, String(id)]).first.map(Self.subscriber)
    }

    /// The subscriber with this address (any case), on the list `listID` when given.
    public func subscriber(tenant: TenantID, email: String, listID: Int64? = nil) async throws -> Subscriber? {
        guard case .success(let email) = SubscriberAddress.normalize(email) else { return nil }
        return try await db.query("""
            SELECT \(Self.columns) FROM subscribers s
            WHERE s.tenant_id = $1 AND s.email = $2
              AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM list_members m
                   WHERE m.tenant_id = s.tenant_id AND m.list_id = $3::bigint AND m.subscriber_id = s.id))
            """, [tenant.parameter, email, listID.map(String.init)]).first.map(Self.subscriber)
    }

    /// One page of subscribers in id order: those of list `listID` (nil: all of the
    /// tenant's), with `status` when given, after the cursor `after`. Keyset
    /// pagination: a page costs the same at any depth, and a subscriber added or
    /// removed meanwhile never shifts the others (none is seen twice or skipped).
    /// With `search`, only subscribers whose email, name, first or last name contains it
    /// (case-insensitive, as plain text: no pattern characters); this filters the rows the
    /// keyset walks, so a rare match may read much of a large list for one page.
    /// nil when the list does not exist for this tenant.
    public func subscribers(tenant: TenantID, listID: Int64? = nil, status: SubscriberStatus? = nil,
                            search: String? = nil, after: Int64? = nil, limit: Int = 100) async throws -> SubscriberPage? {
        let limit = max(1, min(limit, 1000))
        let parameters: [String?] = [tenant.parameter, listID.map(String.init), status?.rawValue,
                                     String(after ?? 0), String(limit + 1), search.map { $0.lowercased() }]
        @Sendable func matches(_ p: String) -> String {
            """
            (\(p)::text IS NULL OR strpos(lower(s.email || ' ' || coalesce(s.name, '') || ' ' || coalesce(s.first_name, '')
                                                || ' ' || coalesce(s.last_name, '')), \(p)) > 0)
            """
        }
        let rows: [[String?]]? = try await db.withConnection { connection in
            if let listID {
                guard try !connection.query("SELECT 1 FROM lists WHERE tenant_id = $1 AND id = $2",
                                            [parameters[0], String(listID)]).rows.isEmpty
                else { return nil }
                return try connection.query("""
                    SELECT \(Self.columns) FROM list_members m
                    JOIN subscribers s ON s.tenant_id = m.tenant_id AND s.id = m.subscriber_id
                    WHERE m.tenant_id = $1 AND m.list_id = $2::bigint AND ($3::text IS NULL OR s.status = $3)
                      AND m.subscriber_id > $4::bigint AND \(matches("$6"))
                    ORDER BY m.subscriber_id LIMIT $5
                    """, parameters).rows
            }
            return try connection.query("""
                SELECT \(Self.columns) FROM subscribers s
                WHERE s.tenant_id = $1 AND ($2::text IS NULL OR s.status = $2) AND s.id > $3::bigint AND \(matches("$5"))
                ORDER BY s.id LIMIT $4
                """, [parameters[0], parameters[2], parameters[3], parameters[4], parameters[5]]).rows
        }
        guard var rows else { return nil }
        var next: Int64?
        if rows.count > limit {
            rows.removeLast(rows.count - limit)
            next = try rows.last.map { try PGText.require($0, 0, PGText.int64) }
        }
        return SubscriberPage(subscribers: try rows.map(Self.subscriber), nextCursor: next)
    }

    /// Sets a subscriber's status (unsubscribe, bounce, complaint, or back to active).
    public func setStatus(tenant: TenantID, id: Int64, _ status: SubscriberStatus) async throws -> Subscriber? {
        try await db.query("""
            UPDATE subscribers AS s SET status = $3, updated_at = now()
            WHERE s.tenant_id = $1 AND s.id = $2 RETURNING \(Self.columns)
            """, [tenant.parameter, String(id), status.rawValue]).first.map(Self.subscriber)
    }

    /// Deletes the subscriber from the tenant (every list). False when there is none.
    @discardableResult
    public func delete(tenant: TenantID, id: Int64) async throws -> Bool {
        let parameters = [tenant.parameter, String(id)]
        return try await db.transaction { connection in
            guard try connection.execute("DELETE FROM subscribers WHERE tenant_id = $1 AND id = $2", parameters) == 1
            else { return false }
            try connection.execute("DELETE FROM list_members WHERE tenant_id = $1 AND subscriber_id = $2", parameters)
            return true
        }
    }

    /// Takes the subscriber off one list. False when it was not on it (or either does
    /// not exist for this tenant).
    @discardableResult
    public func remove(tenant: TenantID, listID: Int64, subscriberID: Int64) async throws -> Bool {
        try await db.execute("DELETE FROM list_members WHERE tenant_id = $1 AND list_id = $2 AND subscriber_id = $3",
                             [tenant.parameter, String(listID), String(subscriberID)]) == 1
    }

    // MARK: -

    static func json(_ attributes: [String: TemplateValue]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(attributes), as: UTF8.self)
    }

    static func subscriber(_ row: [String?]) throws -> Subscriber {
        Subscriber(id: try PGText.require(row, 0, PGText.int64), email: try PGText.require(row, 1), name: row[2],
                   firstName: row[3], lastName: row[4], attributes: try attributes(row, 5),
                   status: try PGText.require(row, 6, SubscriberStatus.init(rawValue:)),
                   createdAt: try PGText.require(row, 7, PGText.timestamp),
                   updatedAt: try PGText.require(row, 8, PGText.timestamp))
    }

    /// A `subscribers.attributes` column (a JSON object, never NULL): the subscriber's
    /// template variables.
    public static func attributes(_ row: [String?], _ column: Int) throws(PGDecodingError) -> [String: TemplateValue] {
        try PGText.require(row, column, {
            try? JSONDecoder().decode([String: TemplateValue].self, from: Data($0.utf8))
        }, as: "attributes object")
    }
}
