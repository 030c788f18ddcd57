import DKIM
import Foundation
import MailFormat
import Postgres

/// A tenant's DKIM key as the API shows it: never the private key.
public struct TenantDKIMKey: Sendable, Equatable {
    public var id: Int64
    public var domain: String
    public var selector: String
    public var algorithm: DKIMAlgorithm
    /// `<selector>._domainkey.<domain>`
    public var recordName: String
    /// The TXT record to publish: `v=DKIM1; k=…; p=…`.
    public var record: String
    public var createdAt: Date
}

/// DKIM keys made over the API (`dkim_keys`), one tenant's at a time. The private key is
/// generated here, sealed (``SecretSealer``, AES-256-GCM under `[database]
/// encryption_secret`) before it is stored, and opened only to sign that tenant's mail.
public struct DKIMKeyStore: Sendable {
    public let db: PostgresClient
    let sealer: SecretSealer

    public init(_ db: PostgresClient, sealer: SecretSealer) {
        self.db = db
        self.sealer = sealer
    }

    static func context(tenant: TenantID, domain: String, selector: String) -> String {
        "dkim:\(tenant.rawValue):\(domain):\(selector)"
    }

    /// Makes a key pair and stores it (``StoreError`` `.invalid` for a bad domain or
    /// selector, `.conflict` when the tenant has a key for that domain and selector).
    public func create(tenant: TenantID, domain: String, selector: String, algorithm: DKIMAlgorithm) async throws
        -> TenantDKIMKey
    {
        let domain = domain.lowercased().hasSuffix(".") ? String(domain.lowercased().dropLast()) : domain.lowercased()
        let selector = selector.lowercased()
        guard domain.contains("."), AddressSyntax.isDomain(Array(domain.utf8)[...]), domain.utf8.allSatisfy({ $0 < 0x80 })
        else {
            throw StoreError(.invalid, "domain: \"\(domain)\" is not a domain name (e.g. example.org)")
        }
        guard AddressSyntax.isDomain(Array(selector.utf8)[...]), selector.utf8.allSatisfy({ $0 < 0x80 }),
              selector.utf8.count <= 63
        else {
            throw StoreError(.invalid, "selector: \"\(selector)\" is not a selector (letters, digits, - and .; e.g. s2026)")
        }
        let pem = try DKIMKey.generate(algorithm)
        let key = try DKIMKey(domain: domain, selector: selector, pem: pem)
        let sealed = try sealer.seal(pem, context: Self.context(tenant: tenant, domain: domain, selector: selector))
        guard let row = try await db.query("""
            INSERT INTO dkim_keys (tenant_id, domain, selector, algorithm, private_key, record)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (tenant_id, domain, selector) DO NOTHING
            RETURNING id, created_at
            """, [tenant.parameter, domain, selector, algorithm.rawValue, sealed, key.record]).first
        else {
            throw StoreError(.conflict, "a key for \(key.recordName) exists; delete it first or pick another selector")
        }
        return TenantDKIMKey(id: try PGText.require(row, 0, PGText.int64), domain: domain, selector: selector,
                             algorithm: algorithm, recordName: key.recordName, record: key.record,
                             createdAt: try PGText.require(row, 1, PGText.timestamp))
    }

    static let columns = "id, domain, selector, algorithm, record, created_at"

    static func key(_ row: [String?]) throws -> TenantDKIMKey {
        let domain = try PGText.require(row, 1), selector = try PGText.require(row, 2)
        return TenantDKIMKey(id: try PGText.require(row, 0, PGText.int64), domain: domain, selector: selector,
                             algorithm: try PGText.require(row, 3, DKIMAlgorithm.init(rawValue:)),
                             recordName: "\(selector)._domainkey.\(domain)", record: try PGText.require(row, 4),
                             createdAt: try PGText.require(row, 5, PGText.timestamp))
    }

    /// A page of the tenant's keys in the order they were made.
    public func keys(tenant: TenantID, after: Int64?, limit: Int) async throws -> [TenantDKIMKey] {
        try await db.query("""
            SELECT \(Self.columns) FROM dkim_keys WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3
            """, [tenant.parameter, String(after ?? 0), String(limit)]).map(Self.key)
    }

    public func key(tenant: TenantID, id: Int64) async throws -> TenantDKIMKey? {
        try await db.query("SELECT \(Self.columns) FROM dkim_keys WHERE tenant_id = $1 AND id = $2",
                           [tenant.parameter, String(id)]).first.map(Self.key)
    }

    /// Deletes the key; false when the tenant has no such key.
    public func delete(tenant: TenantID, id: Int64) async throws -> Bool {
        try await db.execute("DELETE FROM dkim_keys WHERE tenant_id = $1 AND id = $2",
                             [tenant.parameter, String(id)]) == 1
    }

    /// The tenant's signing keys, opened. A key that does not open (the encryption
    /// secret changed, the row was altered) is left out and reported in `unopened`.
    public func signingKeys(tenant: TenantID) async throws -> (keys: [DKIMKey], unopened: [String]) {
        var keys: [DKIMKey] = []
        var unopened: [String] = []
        for row in try await db.query("""
            SELECT domain, selector, private_key FROM dkim_keys WHERE tenant_id = $1 ORDER BY id
            """, [tenant.parameter]) {
            let domain = try PGText.require(row, 0), selector = try PGText.require(row, 1)
            do {
                let pem = try sealer.open(try PGText.require(row, 2),
                                          context: Self.context(tenant: tenant, domain: domain, selector: selector))
                keys.append(try DKIMKey(domain: domain, selector: selector, pem: pem))
            } catch {
                unopened.append("\(selector)._domainkey.\(domain): \(error)")
            }
        }
        return (keys, unopened)
    }
}
