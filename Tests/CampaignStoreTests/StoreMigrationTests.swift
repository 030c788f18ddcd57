import Foundation
import HeraldTestSupport
import Testing

@testable import CampaignStore
@testable import Postgres

@Suite("Store migrations", .enabled(if: PostgresServer.isAvailable))
struct StoreMigrationTests {
    static let tables = ["api_keys", "bounce_events", "campaign_chunks", "campaign_counters", "campaign_recipients",
                         "campaigns", "dkim_keys", "list_members", "lists", "schema_migrations", "smtp_users",
                         "subscribers", "suppressions", "tenant_limits", "tenant_usage", "tenants", "tracking_events",
                         "webhook_deliveries", "webhook_endpoints", "webhook_events"]

    @Test func migrationIsAppliedOnceAndIsIdempotent() async throws {
        try await StoreTestDB.with(migrated: false) { db in
            let first = try await Migrator.migrate(db)
            #expect(first.applied == Schema.migrations.map(\.version))
            #expect(first.current == Schema.latestVersion)
            let second = try await Migrator.migrate(db)
            #expect(second.applied == [])
            #expect(second.current == Schema.latestVersion)
            #expect(second.unknown == [])

            let tables = try await db.query("""
                SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name
                """).map { $0[0]! }
            #expect(tables == Self.tables)
            let recorded = try await db.query(
                "SELECT version, name, applied_at IS NOT NULL FROM schema_migrations ORDER BY version")
            #expect(recorded == [["1", "campaign store", "t"], ["2", "segments and retries", "t"],
                                 ["3", "campaigns end with their mail", "t"], ["4", "postmaster holds", "t"],
                                 ["5", "suppression ids", "t"], ["6", "bounce and complaint events", "t"],
                                 ["7", "tenant dkim keys and campaign max attempts", "t"],
                                 ["8", "open and click tracking", "t"],
                                 ["9", "tenant limits and submission quotas", "t"], ["10", "webhooks", "t"],
                                 ["11", "smtp users", "t"]])
        }
    }

    /// Versions are applied by what is missing, not by the highest one recorded: a
    /// migration whose number lies below one applied already (two branches took 9 and
    /// 10, and 10 reached a database first) is applied when it arrives.
    @Test func aMissingLowerVersionIsAppliedLater() async throws {
        try await StoreTestDB.with(migrated: false) { db in
            let without9 = Schema.migrations.filter { $0.version != 9 }
            _ = try await Migrator.migrate(db, migrations: without9)
            let probe = Migration(version: 9, name: "gap probe", sql: "CREATE TABLE gap_probe (x integer)")
            let report = try await Migrator.migrate(db, migrations: without9 + [probe])
            #expect(report.applied == [9])
            #expect(report.unknown == [])
            #expect(try await db.query("SELECT count(*) FROM gap_probe") == [["0"]])
        }
    }

    @Test func everyTenantOwnedTableCarriesTenantID() async throws {
        try await StoreTestDB.with { db in
            let rows = try await db.query("""
                SELECT table_name FROM information_schema.columns
                WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name
                """).map { $0[0]! }
            #expect(rows == Self.tables.filter { $0 != "tenants" && $0 != "schema_migrations" })
        }
    }

    @Test func concurrentMigratorsApplyEachVersionOnce() async throws {
        let url = try await StoreTestDB.freshURL()
        // The real schema, from four processes' worth of clients at once.
        let clients = (0..<4).map { _ in PostgresClient(url: url, size: 1) }
        let reports = try await withThrowingTaskGroup(of: MigrationReport.self) { group in
            for client in clients { group.addTask { try await Migrator.migrate(client) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.flatMap(\.applied).sorted() == Schema.migrations.map(\.version))
        #expect(reports.allSatisfy { $0.current == Schema.latestVersion })
        #expect(try await clients[0].query("SELECT count(*) FROM schema_migrations")
                == [[String(Schema.migrations.count)]])
        for client in clients { await client.close() }
    }

    @Test func theAdvisoryLockSerializesSlowMigrations() async throws {
        let url = try await StoreTestDB.freshURL()
        let slow = [
            Migration(version: 1, name: "slow", sql: "CREATE TABLE slow (id int); SELECT pg_sleep(0.4);"),
            Migration(version: 2, name: "then", sql: "ALTER TABLE slow ADD COLUMN note text;"),
        ]
        let a = PostgresClient(url: url, size: 1), b = PostgresClient(url: url, size: 1)
        async let ra = Migrator.migrate(a, migrations: slow)
        async let rb = Migrator.migrate(b, migrations: slow)
        let (reportA, reportB) = try await (ra, rb)
        #expect((reportA.applied + reportB.applied).sorted() == [1, 2])
        #expect(reportA.applied.isEmpty || reportB.applied.isEmpty)
        #expect(try await a.query("SELECT version FROM schema_migrations ORDER BY version") == [["1"], ["2"]])
        // The lock was released: a third run neither waits nor applies anything.
        #expect(try await Migrator.migrate(a, migrations: slow).applied == [])
        #expect(try await a.query("""
            SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """) == [["0"]])
        await a.close()
        await b.close()
    }

    @Test func aFailingMigrationLeavesNoTrace() async throws {
        try await StoreTestDB.with(migrated: false) { (db) async throws in
            let migrations = [
                Migration(version: 1, name: "good", sql: "CREATE TABLE good (id int);"),
                Migration(version: 2, name: "bad", sql: "CREATE TABLE half (id int); SELECT 1 / 0;"),
            ]
            await #expect {
                try await Migrator.migrate(db, migrations: migrations)
            } throws: { error in
                guard let error = error as? MigrationError else { return false }
                return error.version == 2 && (error.underlying as? PostgresError)?.sqlState == "22012"
            }
            #expect(try await db.query("SELECT version FROM schema_migrations") == [["1"]])
            #expect(try await db.query("SELECT to_regclass('half') IS NULL, to_regclass('good') IS NOT NULL") == [["t", "t"]])
            // Fixed, it applies.
            let fixed = [migrations[0], Migration(version: 2, name: "bad", sql: "CREATE TABLE half (id int);")]
            #expect(try await Migrator.migrate(db, migrations: fixed).applied == [2])
        }
    }

    @Test func versionsFromANewerHeraldAreReported() async throws {
        try await StoreTestDB.with { db in
            try await db.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')")
            let report = try await Migrator.migrate(db)
            #expect(report.applied == [])
            #expect(report.unknown == [999])
            #expect(report.current == 999)
        }
    }
}
