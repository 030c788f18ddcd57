import Foundation
import HeraldTestSupport
import Testing

@testable import CampaignStore

@Suite("Tenants and API keys", .enabled(if: PostgresServer.isAvailable))
struct StoreTenantTests {
    @Test func keysHaveTheirShapeAndHash() {
        let key = APIKey.generate()
        #expect(key.hasPrefix("hk_"))
        #expect(key.count == APIKey.length)
        #expect(APIKey.isWellFormed(key))
        #expect(APIKey.generate() != key)
        // SHA-256 test vector (FIPS 180-2): "abc".
        #expect(APIKey.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(!APIKey.isWellFormed("hk_short"))
        #expect(!APIKey.isWellFormed("xx_" + String(key.dropFirst(3))))
        #expect(!APIKey.isWellFormed(String(key.dropLast()) + "!"))
    }

    @Test func createAuthenticateRevoke() async throws {
        try await StoreTestDB.with { db in
            let store = TenantStore(db)
            let (tenant, first) = try await store.createTenant(name: "  Acme Corp ")
            #expect(tenant.name == "Acme Corp")
            #expect(first.record.tenantID == tenant.id)
            #expect(first.key.hasPrefix(first.record.prefix))
            #expect(try await store.authenticate(bearerKey: first.key) == tenant.id)
            #expect(try await store.authenticate(bearerKey: APIKey.generate()) == nil)
            #expect(try await store.authenticate(bearerKey: "") == nil)
            #expect(try await store.authenticate(bearerKey: first.key + "x") == nil)

            let second = try #require(try await store.addKey(tenantName: "ACME CORP"))
            #expect(second.record.tenantID == tenant.id)
            #expect(try await store.authenticate(bearerKey: second.key) == tenant.id)

            let revoked = try #require(try await store.revokeKey(id: first.record.id))
            #expect(revoked.isRevoked)
            #expect(try await store.authenticate(bearerKey: first.key) == nil)
            #expect(try await store.authenticate(bearerKey: second.key) == tenant.id)
            // Revoking again keeps the first revocation time; unknown ids are nil.
            #expect(try await store.revokeKey(id: first.record.id)?.revokedAt == revoked.revokedAt)
            #expect(try await store.revokeKey(id: 987_654) == nil)

            let keys = try #require(try await store.keys(tenantName: "acme corp"))
            #expect(keys.map(\.id) == [first.record.id, second.record.id])
            #expect(keys.map(\.isRevoked) == [true, false])
            #expect(try await store.addKey(tenantName: "nobody") == nil)
            #expect(try await store.keys(tenantName: "nobody") == nil)
        }
    }

    @Test func onlyTheHashIsStored() async throws {
        try await StoreTestDB.with { db in
            let (_, issued) = try await TenantStore(db).createTenant(name: "hashco")
            let rows = try await db.query("SELECT key_hash, prefix, encode(sha256($1::bytea), 'hex') FROM api_keys",
                                          [issued.key])
            #expect(rows.count == 1)
            #expect(rows[0][0] == APIKey.hash(issued.key))
            #expect(rows[0][0] == rows[0][2])  // PostgreSQL's own SHA-256 agrees with OpenSSL's
            #expect(rows[0][1] == String(issued.key.prefix(11)))
            let dump = try await db.query("SELECT row_to_json(k)::text FROM api_keys k")[0][0]!
            #expect(!dump.contains(String(issued.key.dropFirst(11))))
        }
    }

    @Test func namesAreUniqueIgnoringCaseAndValidated() async throws {
        try await StoreTestDB.with { db in
            let store = TenantStore(db)
            _ = try await store.createTenant(name: "Globex")
            await #expect(throws: StoreError(.conflict, "a tenant named GLOBEX exists already")) {
                try await store.createTenant(name: "GLOBEX")
            }
            await #expect { try await store.createTenant(name: "  ") } throws: { ($0 as? StoreError)?.kind == .invalid }
            await #expect { try await store.createTenant(name: "bad\u{7}name") } throws: {
                ($0 as? StoreError)?.kind == .invalid
            }
            // Nothing half-written: the failed creations left no key behind.
            #expect(try await db.query("SELECT count(*) FROM api_keys") == [["1"]])
        }
    }

    @Test func listTenantsWithKeyCounts() async throws {
        try await StoreTestDB.with { db in
            let store = TenantStore(db)
            let (b, keyB) = try await store.createTenant(name: "beta")
            let (a, _) = try await store.createTenant(name: "Alpha")
            _ = try await store.addKey(tenantName: "beta")
            try await store.revokeKey(id: keyB.record.id)
            let all = try await store.listTenants()
            #expect(all.map(\.tenant.id) == [a.id, b.id])
            #expect(all.map(\.activeKeys) == [1, 1])
            #expect(all.map(\.revokedKeys) == [0, 1])
            #expect(try await store.tenant(named: "ALPHA")?.id == a.id)
        }
    }

    @Test func revokingIsScopedWhenATenantIsGiven() async throws {
        try await StoreTestDB.with { db in
            let store = TenantStore(db)
            let (a, keyA) = try await store.createTenant(name: "a")
            let (b, _) = try await store.createTenant(name: "b")
            #expect(try await store.revokeKey(id: keyA.record.id, tenant: b.id) == nil)
            #expect(try await store.authenticate(bearerKey: keyA.key) == a.id)
            #expect(try await store.revokeKey(id: keyA.record.id, tenant: a.id)?.isRevoked == true)
        }
    }
}
