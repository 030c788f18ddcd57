import COpenSSLCrypto
import Foundation
import Postgres

/// A tenant: one customer of the gateway; every list, subscriber and campaign belongs
/// to exactly one.
public struct Tenant: Sendable, Equatable, Codable {
    public var id: TenantID
    public var name: String
    public var createdAt: Date
}

/// A tenant with how many API keys it has.
public struct TenantSummary: Sendable, Equatable {
    public var tenant: Tenant
    public var activeKeys: Int
    public var revokedKeys: Int
}

/// What the store knows about an API key: never the key itself.
public struct APIKeyRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var tenantID: TenantID
    /// The key's first characters (`hk_AbCd1234`), for people to tell keys apart.
    public var prefix: String
    public var createdAt: Date
    public var revokedAt: Date?
    public var isRevoked: Bool { revokedAt != nil }
}

/// A key just made: `key` is shown once (the store keeps only its hash).
public struct IssuedAPIKey: Sendable {
    public var record: APIKeyRecord
    public var key: String
}

/// API keys: `hk_` followed by 32 random bytes (OpenSSL `RAND_bytes`) in base64url
/// without padding, 46 characters in all. Stored as the SHA-256 of the whole key, in
/// hex: a database leak does not leak usable keys, and 256 random bits need no salt or
/// slow hash (nobody can brute-force them).
public enum APIKey {
    public static let scheme = "hk_"
    static let randomBytes = 32
    /// `hk_` + 43 base64url characters.
    public static let length = 3 + 43
    /// How much of a key the store keeps in clear, for display.
    static let prefixLength = 11

    /// A new random key.
    public static func generate() -> String {
        scheme + base64URL(random(randomBytes, for: "an API key"))
    }

    /// `count` random bytes (OpenSSL `RAND_bytes`) for a secret, `what` naming it.
    static func random(_ count: Int, for what: String) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&bytes, Int32(count)) == 1 else {
            // No entropy is not something to work around.
            fatalError("OpenSSL RAND_bytes failed: cannot make \(what)")
        }
        return bytes
    }

    /// SHA-256 of the key's UTF-8 bytes, lower-case hex (OpenSSL EVP).
    public static func hash(_ key: String) -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let bytes = Array(key.utf8)
        let ok = bytes.withUnsafeBytes { input in
            EVP_Digest(input.baseAddress, input.count, &digest, &length, EVP_sha256(), nil)
        }
        precondition(ok == 1 && length == 32, "OpenSSL EVP_Digest(SHA-256) failed")
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(64)
        for byte in digest.prefix(32) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The part kept for display.
    public static func prefix(of key: String) -> String { String(key.prefix(prefixLength)) }

    /// Whether `key` has the shape of a Herald key (checked before any database work).
    public static func isWellFormed(_ key: String) -> Bool {
        guard key.utf8.count == length, key.hasPrefix(scheme) else { return false }
        return key.utf8.dropFirst(3).allSatisfy { b in
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
        }
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// Tenants and their API keys (the `herald tenant` command, and the HTTP API's
/// `Authorization: Bearer` check).
public struct TenantStore: Sendable {
    public let db: PostgresClient

    public init(_ db: PostgresClient) {
        self.db = db
    }

    static let tenantColumns = "t.id, t.name, t.created_at"
    static let keyColumns = "k.id, k.tenant_id, k.prefix, k.created_at, k.revoked_at"

    /// A new tenant and its first API key. Names are unique, ignoring case.
    public func createTenant(name: String) async throws -> (tenant: Tenant, key: IssuedAPIKey) {
        let name = try NameRules.validate(name, what: "tenant name", limit: 200)
        let key = APIKey.generate()
        do {
            return try await db.transaction { connection in
                let row = try connection.query(
                    "INSERT INTO tenants AS t (name) VALUES ($1) RETURNING \(Self.tenantColumns)", [name]).rows[0]
                let tenant = try Self.tenant(row)
                let record = try Self.insertKey(key, tenant: tenant.id, connection)
                return (tenant, IssuedAPIKey(record: record, key: key))
            }
        } catch let error as PostgresError where error.isUniqueViolation {
            throw StoreError(.conflict, "a tenant named \(name) exists already")
        }
    }

    /// A new API key for the tenant named `tenantName` (nil: no such tenant).
    public func addKey(tenantName: String) async throws -> IssuedAPIKey? {
        let key = APIKey.generate()
        return try await db.transaction { connection in
            let rows = try connection.query("SELECT id FROM tenants WHERE lower(name) = lower($1)", [tenantName]).rows
            guard let row = rows.first else { return nil }
            let id = try PGText.require(row, 0, PGText.int64)
            return IssuedAPIKey(record: try Self.insertKey(key, tenant: TenantID(id), connection), key: key)
        }
    }

    /// Revokes the key with this id (scoped to `tenant` when given). Returns the key's
    /// record, nil when there is no such key; revoking a revoked key changes nothing.
    @discardableResult
    public func revokeKey(id: Int64, tenant: TenantID? = nil) async throws -> APIKeyRecord? {
        let rows = try await db.query("""
            UPDATE api_keys AS k SET revoked_at = coalesce(k.revoked_at, now())
            WHERE k.id = $1 AND ($2::bigint IS NULL OR k.tenant_id = $2::bigint)
            RETURNING \(Self.keyColumns)
            """, [String(id), tenant?.parameter])
        return try rows.first.map(Self.key)
    }

    /// Every tenant, by name, with key counts.
    public func listTenants() async throws -> [TenantSummary] {
        let rows = try await db.query("""
            SELECT \(Self.tenantColumns),
                   count(k.id) FILTER (WHERE k.revoked_at IS NULL),
                   count(k.id) FILTER (WHERE k.revoked_at IS NOT NULL)
            FROM tenants t LEFT JOIN api_keys k ON k.tenant_id = t.id
            GROUP BY t.id ORDER BY lower(t.name)
            """)
        return try rows.map { row in
            TenantSummary(tenant: try Self.tenant(row), activeKeys: try PGText.require(row, 3, PGText.int),
                          revokedKeys: try PGText.require(row, 4, PGText.int))
        }
    }

    /// The tenant with this name (ignoring case), or nil.
    public func tenant(named name: String) async throws -> Tenant? {
        try await db.query("SELECT \(Self.tenantColumns) FROM tenants t WHERE lower(t.name) = lower($1)", [name])
            .first.map(Self.tenant)
    }

    /// The tenant's keys, oldest first (nil: no such tenant).
    public func keys(tenantName: String) async throws -> [APIKeyRecord]? {
        guard let tenant = try await tenant(named: tenantName) else { return nil }
        return try await db.query("SELECT \(Self.keyColumns) FROM api_keys k WHERE k.tenant_id = $1 ORDER BY k.id",
                                  [tenant.id.parameter]).map(Self.key)
    }

    /// The tenant a bearer key belongs to, or nil for an unknown, malformed or revoked key.
    public func authenticate(bearerKey: String) async throws -> TenantID? {
        guard APIKey.isWellFormed(bearerKey) else { return nil }
        let rows = try await db.query("SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                                      [APIKey.hash(bearerKey)])
        return try rows.first.map { TenantID(try PGText.require($0, 0, PGText.int64)) }
    }

    // MARK: -

    private static func insertKey(_ key: String, tenant: TenantID, _ connection: PostgresConnection) throws -> APIKeyRecord {
        let row = try connection.query(
            "INSERT INTO api_keys AS k (tenant_id, key_hash, prefix) VALUES ($1, $2, $3) RETURNING \(keyColumns)",
            [tenant.parameter, APIKey.hash(key), APIKey.prefix(of: key)]).rows[0]
        return try Self.key(row)
    }

    static func tenant(_ row: [String?]) throws -> Tenant {
        Tenant(id: TenantID(try PGText.require(row, 0, PGText.int64)), name: try PGText.require(row, 1),
               createdAt: try PGText.require(row, 2, PGText.timestamp))
    }

    static func key(_ row: [String?]) throws -> APIKeyRecord {
        APIKeyRecord(id: try PGText.require(row, 0, PGText.int64), tenantID: TenantID(try PGText.require(row, 1, PGText.int64)),
                     prefix: try PGText.require(row, 2), createdAt: try PGText.require(row, 3, PGText.timestamp),
                     revokedAt: PGText.timestamp(row[4]))
    }
}
