import Logging
import Postgres

/// One schema change: SQL run in a transaction of its own, recorded in
/// `schema_migrations` with its version.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    /// One or more `;`-separated statements.
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// What ``Migrator/migrate(_:migrations:logger:)`` did.
public struct MigrationReport: Sendable, Equatable {
    /// Versions applied by this call, in order.
    public var applied: [Int]
    /// The highest version recorded in the database afterwards.
    public var current: Int
    /// Versions recorded in the database that this build does not know (a newer Herald
    /// migrated it; this one may lack columns that one relies on, but it works with what
    /// it knows).
    public var unknown: [Int]
}

public struct MigrationError: Error, CustomStringConvertible {
    public var version: Int
    public var name: String
    public var underlying: Error
    public var description: String { "migration \(version) (\(name)) failed: \(underlying)" }
}

/// Applies pending migrations at start-up.
///
/// Each migration runs in its own transaction together with its `schema_migrations`
/// row, so it is applied entirely or not at all. The whole run holds a session-level
/// advisory lock (`pg_advisory_lock`): when several Herald processes start at once on
/// one database, one migrates and the others wait, then find nothing left to do.
public enum Migrator {
    /// The advisory lock key ("HERALD" in ASCII), shared by every Herald on a database.
    public static let lockKey: Int64 = 0x48_45_52_41_4C_44

    @discardableResult
    public static func migrate(_ client: PostgresClient, migrations: [Migration] = Schema.migrations,
                               logger: Logger = Logger(label: "herald.migrations")) async throws -> MigrationReport {
        let sorted = migrations.sorted { $0.version < $1.version }
        precondition(Set(sorted.map(\.version)).count == sorted.count && (sorted.first?.version ?? 1) > 0,
                     "migration versions must be unique and positive")
        return try await client.withConnection { connection in
            try connection.execute("SELECT pg_advisory_lock($1::bigint)", [String(lockKey)])
            defer {
                // A broken connection has released the lock with its session.
                if connection.isOpen { _ = try? connection.execute("SELECT pg_advisory_unlock($1::bigint)", [String(lockKey)]) }
            }
            try connection.execute("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version     integer PRIMARY KEY,
                    name        text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """)
            let recorded = Set(try connection.query("SELECT version FROM schema_migrations").rows.compactMap { $0[0].flatMap { Int($0) } })
            var applied: [Int] = []
            for migration in sorted where !recorded.contains(migration.version) {
                do {
                    try connection.inTransaction {
                        try connection.executeScript(migration.sql)
                        try connection.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                               [String(migration.version), migration.name])
                    }
                } catch {
                    throw MigrationError(version: migration.version, name: migration.name, underlying: error)
                }
                logger.info("applied schema migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                applied.append(migration.version)
            }
            let known = Set(sorted.map(\.version))
            let all = recorded.union(applied)
            let unknown = all.subtracting(known).sorted()
            if !unknown.isEmpty {
                logger.warning("the database has schema migrations this Herald does not know; a newer version migrated it",
                               metadata: ["unknown": "\(unknown)"])
            }
            return MigrationReport(applied: applied, current: all.max() ?? 0, unknown: unknown)
        }
    }
}
