import CampaignStore
import Foundation
import HeraldTestSupport
import Logging
import Postgres
import Testing

@testable import Herald

/// ``SMTPUserDirectory``: AUTH against the config's users and the database's, on a real
/// PostgreSQL.
@Suite("SMTP user directory", .enabled(if: PostgresServer.isAvailable))
struct SMTPUserDirectoryTests {
    static let logger = Logger(label: "test")

    @Test("database users authenticate with their tenant; config users win over a database user of that name")
    func configFirstThenDatabase() async throws {
        try await StoreTestDB.with { db in
            let (a, _) = try await StoreTestDB.tenant(db, "alpha")
            let store = SMTPUserStore(db)
            let config = SMTPUserDirectory(configUsers: [:], store: nil, logger: Self.logger)
            let directory = SMTPUserDirectory(configUsers: ["Ops": config.passwordHash(for: "pw-config")], store: store,
                                              logger: Self.logger)
            _ = try await store.create(tenant: a.id, username: "shop", passwordHash: directory.passwordHash(for: "pw-shop"))
            // Made straight in the database, as another node's config might not have it.
            _ = try await store.create(tenant: a.id, username: "ops", passwordHash: directory.passwordHash(for: "pw-db"))
            #expect(directory.hasUsers && !config.hasUsers)

            #expect(await directory.verify(username: "shop", password: "pw-shop"))
            #expect(await directory.tenant(ofUser: "shop") == a.id)
            #expect(directory.knownTenant(ofUser: "shop") == a.id)
            #expect(!(await directory.verify(username: "shop", password: "pw-other")))
            #expect(!(await directory.verify(username: "Shop", password: "pw-shop")), "names are compared as sent")
            #expect(!(await directory.verify(username: "nobody", password: "pw-shop")))

            // "ops" is the config's, in any case: the database user's password is not taken.
            #expect(await directory.verify(username: "Ops", password: "pw-config"))
            #expect(!(await directory.verify(username: "ops", password: "pw-db")))
            #expect(directory.isConfigUser("OPS") && !directory.isConfigUser("shop"))
            #expect(await directory.tenant(ofUser: "ops") == nil)
        }
    }

    @Test("a deletion holds at once when told, else within the TTL; an authenticated session keeps its tenant")
    func deletionAndCache() async throws {
        try await StoreTestDB.with { db in
            let (a, _) = try await StoreTestDB.tenant(db, "alpha")
            let store = SMTPUserStore(db)
            let directory = SMTPUserDirectory(configUsers: [:], store: store, ttl: .seconds(2), logger: Self.logger)
            let hash = directory.passwordHash(for: "pw")
            let user = try await store.create(tenant: a.id, username: "shop", passwordHash: hash)
            #expect(await directory.verify(username: "shop", password: "pw"))

            // Deleted by another node: still known here until the TTL ends.
            _ = try await store.delete(tenant: a.id, id: user.id)
            #expect(await directory.verify(username: "shop", password: "pw"))
            try await Task.sleep(for: .milliseconds(2100))
            #expect(!(await directory.verify(username: "shop", password: "pw")))
            // The session that authenticated keeps its tenant's tag.
            #expect(await directory.tenant(ofUser: "shop") == a.id)

            // Made again, then deleted through this node's API: forgotten at once.
            let again = try await store.create(tenant: a.id, username: "shop", passwordHash: hash)
            #expect(!(await directory.verify(username: "shop", password: "pw")), "the negative answer is cached")
            directory.changed("shop")
            #expect(await directory.verify(username: "shop", password: "pw"))
            _ = try await store.delete(tenant: a.id, id: again.id)
            directory.changed("shop")
            #expect(!(await directory.verify(username: "shop", password: "pw")))
        }
    }

    @Test("an unknown name costs a hash check like a wrong password")
    func unknownNameTiming() async throws {
        try await StoreTestDB.with { db in
            let (a, _) = try await StoreTestDB.tenant(db, "alpha")
            let store = SMTPUserStore(db)
            let directory = SMTPUserDirectory(configUsers: [:], store: store, logger: Self.logger)
            _ = try await store.create(tenant: a.id, username: "shop", passwordHash: directory.passwordHash(for: "pw"))
            // Read once each, so that both are answered from the cache below.
            _ = await directory.verify(username: "shop", password: "x")
            _ = await directory.verify(username: "nobody", password: "x")
            let clock = ContinuousClock()
            var known = Duration.zero, unknown = Duration.zero
            for _ in 0..<3 {
                known += await clock.measure { #expect(!(await directory.verify(username: "shop", password: "x"))) }
                unknown += await clock.measure { #expect(!(await directory.verify(username: "nobody", password: "x"))) }
            }
            // Both run the same PBKDF2 (hundreds of thousands of rounds); without it an
            // unknown name would answer in microseconds.
            #expect(unknown > known / 3, "known \(known), unknown \(unknown)")
        }
    }
}
