import Foundation
import HeraldTestSupport
import Postgres
import Testing

@testable import CampaignStore

/// Tenants' SMTP AUTH users (`smtp_users`) on a real PostgreSQL.
@Suite("SMTP users", .enabled(if: PostgresServer.isAvailable))
struct StoreSMTPUserTests {
    @Test("a user is made, listed, read, re-keyed and deleted; the hash is kept, never shown")
    func lifecycle() async throws {
        try await StoreTestDB.with { db in
            let (a, _) = try await StoreTestDB.tenant(db, "alpha")
            let store = SMTPUserStore(db)
            let shop = try await store.create(tenant: a.id, username: "Shop.Mail", passwordHash: "hash-1")
            #expect(shop.tenant == a.id && shop.username == "Shop.Mail" && shop.lastUsedAt == nil)
            let news = try await store.create(tenant: a.id, username: "news@alpha.example", passwordHash: "hash-2")
            #expect(try await store.users(tenant: a.id, after: nil, limit: 10) == [shop, news])
            #expect(try await store.users(tenant: a.id, after: shop.id, limit: 10) == [news])
            #expect(try await store.users(tenant: a.id, after: nil, limit: 1) == [shop])
            #expect(try await store.user(tenant: a.id, id: news.id) == news)

            // AUTH reads the hash by the exact name only.
            #expect(try await store.credentials(username: "Shop.Mail")
                == SMTPUserCredentials(tenant: a.id, username: "Shop.Mail", passwordHash: "hash-1"))
            #expect(try await store.credentials(username: "shop.mail") == nil)
            #expect(try await store.credentials(username: "nobody") == nil)

            let rekeyed = try #require(try await store.setPassword(tenant: a.id, id: shop.id, passwordHash: "hash-3"))
            #expect(rekeyed.passwordChangedAt >= shop.passwordChangedAt)
            #expect(try await store.credentials(username: "Shop.Mail")?.passwordHash == "hash-3")

            let used = Date(timeIntervalSince1970: 1_900_000_000)
            try await store.markUsed(username: "Shop.Mail", at: used)
            #expect(try await store.user(tenant: a.id, id: shop.id)?.lastUsedAt == used)

            #expect(try await store.delete(tenant: a.id, id: shop.id) == "Shop.Mail")
            #expect(try await store.delete(tenant: a.id, id: shop.id) == nil)
            #expect(try await store.credentials(username: "Shop.Mail") == nil)
            #expect(try await store.user(tenant: a.id, id: shop.id) == nil)
            #expect(try await store.users(tenant: a.id, after: nil, limit: 10) == [news])
        }
    }

    @Test("names are unique on the server ignoring case, and checked")
    func uniqueAndValidated() async throws {
        try await StoreTestDB.with { db in
            let (a, _) = try await StoreTestDB.tenant(db, "alpha")
            let (b, _) = try await StoreTestDB.tenant(db, "beta")
            let store = SMTPUserStore(db)
            _ = try await store.create(tenant: a.id, username: "shop", passwordHash: "h")
            for (tenant, name) in [(a.id, "shop"), (b.id, "SHOP"), (b.id, "Shop")] {
                await #expect { try await store.create(tenant: tenant, username: name, passwordHash: "h") } throws: {
                    ($0 as? StoreError)?.kind == .conflict
                }
            }
            let long = String(repeating: "a", count: SMTPUserStore.maxUsernameLength)
            #expect(try await store.create(tenant: b.id, username: long, passwordHash: "h").username == long)
            for bad in ["", long + "a", ".shop", "-x", "has space", "colon:x", "tab\tx", "naïve", "a/b", "a\0b"] {
                await #expect { try await store.create(tenant: b.id, username: bad, passwordHash: "h") } throws: {
                    ($0 as? StoreError)?.kind == .invalid
                }
            }
            #expect(try await store.users(tenant: b.id, after: nil, limit: 10).map(\.username) == [long])
        }
    }

    @Test("another tenant's user is not found: not read, re-keyed, deleted or listed")
    func tenantIsolation() async throws {
        try await StoreTestDB.with { db in
            let (a, _) = try await StoreTestDB.tenant(db, "alpha")
            let (b, _) = try await StoreTestDB.tenant(db, "beta")
            let store = SMTPUserStore(db)
            let shop = try await store.create(tenant: a.id, username: "shop", passwordHash: "hash-a")
            #expect(try await store.user(tenant: b.id, id: shop.id) == nil)
            #expect(try await store.setPassword(tenant: b.id, id: shop.id, passwordHash: "hash-b") == nil)
            #expect(try await store.delete(tenant: b.id, id: shop.id) == nil)
            #expect(try await store.users(tenant: b.id, after: nil, limit: 10).isEmpty)
            #expect(try await store.credentials(username: "shop")?.passwordHash == "hash-a")
            // A tenant deleted takes its users with it.
            try await db.execute("DELETE FROM tenants WHERE id = $1", [a.id.parameter])
            #expect(try await store.credentials(username: "shop") == nil)
        }
    }

    @Test("generated passwords are 32 base64url characters, each one new")
    func generatedPasswords() {
        let passwords = (0..<100).map { _ in SMTPUserStore.generatePassword() }
        #expect(Set(passwords).count == 100)
        #expect(passwords.allSatisfy { p in
            p.utf8.count == 32 && p.utf8.allSatisfy { b in
                (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
            }
        })
    }
}
