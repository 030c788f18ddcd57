import Foundation
import Postgres

/// An SMTP AUTH user made over the API, as the API shows it: never its password or hash.
public struct SMTPUser: Sendable, Equatable {
    public var id: Int64
    public var tenant: TenantID
    public var username: String
    public var createdAt: Date
    public var passwordChangedAt: Date
    /// The last successful AUTH, as nodes record it (at most about once a minute each).
    public var lastUsedAt: Date?
}

/// What the SMTP listener needs to check an AUTH: the user's tenant and password hash.
public struct SMTPUserCredentials: Sendable, Equatable {
    public var tenant: TenantID
    public var username: String
    public var passwordHash: String
}

/// SMTP AUTH users kept in PostgreSQL (`smtp_users`), each of one tenant. Names are
/// unique on the whole server, ignoring case: a client names only itself at AUTH, so
/// the name alone must find the user. Passwords are generated here and shown once; the
/// store keeps only the hash the caller makes of them (the `[[user]] password_hash`
/// format, which this module does not compute), so a database leak gives no usable
/// password.
public struct SMTPUserStore: Sendable {
    public let db: PostgresClient

    public init(_ db: PostgresClient) {
        self.db = db
    }

    /// Longest user name.
    public static let maxUsernameLength = 64
    /// Random bytes in a generated password (base64url: 32 characters, 192 bits).
    static let passwordBytes = 24
    static let usernamePunctuation = Array("._-@+".utf8)

    /// A user name as given, checked: 1 to 64 characters, ASCII letters, digits and
    /// `. _ - @ +`, starting with a letter or digit (so it can be written in the config,
    /// a shell and an AUTH PLAIN string without quoting). `.invalid` otherwise.
    public static func validateUsername(_ name: String) throws(StoreError) -> String {
        guard !name.isEmpty, name.utf8.count <= maxUsernameLength else {
            throw StoreError(.invalid, "username: give 1 to \(maxUsernameLength) characters (got \(name.utf8.count))")
        }
        func alphanumeric(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        let bytes = Array(name.utf8)
        guard alphanumeric(bytes[0]), bytes.allSatisfy({ alphanumeric($0) || usernamePunctuation.contains($0) }) else {
            throw StoreError(.invalid, "username: \"\(name)\" may hold only ASCII letters, digits and . _ - @ +, "
                + "and must start with a letter or digit")
        }
        return name
    }

    /// A new random password: 24 random bytes (OpenSSL `RAND_bytes`) in base64url.
    public static func generatePassword() -> String {
        APIKey.base64URL(APIKey.random(passwordBytes, for: "an SMTP user's password"))
    }

    static let columns = "id, tenant_id, username, created_at, password_changed_at, last_used_at"

    static func user(_ row: [String?]) throws -> SMTPUser {
        SMTPUser(id: try PGText.require(row, 0, PGText.int64), tenant: TenantID(try PGText.require(row, 1, PGText.int64)),
                 username: try PGText.require(row, 2), createdAt: try PGText.require(row, 3, PGText.timestamp),
                 passwordChangedAt: try PGText.require(row, 4, PGText.timestamp), lastUsedAt: PGText.timestamp(row[5]))
    }

    /// Stores a new user of `tenant` (``StoreError`` `.invalid` for a bad name,
    /// `.conflict` when any tenant has a user of that name, ignoring case).
    public func create(tenant: TenantID, username: String, passwordHash: String) async throws -> SMTPUser {
        let username = try Self.validateUsername(username)
        do {
            let rows = try await db.query("""
                INSERT INTO smtp_users (tenant_id, username, password_hash) VALUES ($1, $2, $3)
                RETURNING \(Self.columns)
                """, [tenant.parameter, username, passwordHash])
            return try Self.user(rows[0])
        } catch let error as PostgresError where error.isUniqueViolation {
            throw Self.taken(username)
        }
    }

    /// The `.conflict` of a name in use (by any tenant, or the config).
    public static func taken(_ username: String) -> StoreError {
        StoreError(.conflict, "username: \"\(username)\" is taken; pick another name")
    }

    /// A page of the tenant's users in the order they were made.
    public func users(tenant: TenantID, after: Int64?, limit: Int) async throws -> [SMTPUser] {
        try await db.query("""
            SELECT \(Self.columns) FROM smtp_users WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3
            """, [tenant.parameter, String(after ?? 0), String(limit)]).map(Self.user)
    }

    /// The tenant's user `id`; nil when the tenant has none such (another tenant's is nil too).
    public func user(tenant: TenantID, id: Int64) async throws -> SMTPUser? {
        try await db.query("SELECT \(Self.columns) FROM smtp_users WHERE id = $1 AND tenant_id = $2",
                           [String(id), tenant.parameter]).first.map(Self.user)
    }

    /// Deletes the tenant's user `id`; its name as stored, nil when the tenant has no such user.
    public func delete(tenant: TenantID, id: Int64) async throws -> String? {
        try await db.query("DELETE FROM smtp_users WHERE id = $1 AND tenant_id = $2 RETURNING username",
                           [String(id), tenant.parameter]).first.map { try PGText.require($0, 0) }
    }

    /// Replaces the password hash of the tenant's user `id`; nil when the tenant has no such user.
    public func setPassword(tenant: TenantID, id: Int64, passwordHash: String) async throws -> SMTPUser? {
        try await db.query("""
            UPDATE smtp_users SET password_hash = $3, password_changed_at = now()
            WHERE id = $1 AND tenant_id = $2 RETURNING \(Self.columns)
            """, [String(id), tenant.parameter, passwordHash]).first.map(Self.user)
    }

    /// The credentials of the user named exactly `username` (AUTH names are compared as
    /// sent, like the config's users), or nil.
    public func credentials(username: String) async throws -> SMTPUserCredentials? {
        try await db.query("""
            SELECT tenant_id, username, password_hash FROM smtp_users WHERE lower(username) = lower($1) AND username = $1
            """, [username]).first.map { row in
            SMTPUserCredentials(tenant: TenantID(try PGText.require(row, 0, PGText.int64)),
                                username: try PGText.require(row, 1), passwordHash: try PGText.require(row, 2))
        }
    }

    /// Records a successful AUTH of the user named exactly `username`.
    public func markUsed(username: String, at time: Date = Date()) async throws {
        try await db.execute("UPDATE smtp_users SET last_used_at = $2 WHERE lower(username) = lower($1) AND username = $1",
                             [username, PGText.timestamp(time)])
    }
}
