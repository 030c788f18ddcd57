import Foundation
import HeraldTestSupport
import Testing

@testable import Postgres

@Suite("PostgresClient", .enabled(if: PostgresServer.isAvailable))
struct StorePostgresClientTests {
    @Test func parametersAndResultsAreText() async throws {
        try await StoreTestDB.with(migrated: false) { db in
            let rows = try await db.query("SELECT $1::text, $2::int + 1, $3::text IS NULL, 'ünïcødé ✉', NULL::text",
                                          ["it's a \"test\"; DROP TABLE x", "41", nil])
            #expect(rows == [["it's a \"test\"; DROP TABLE x", "42", "t", "ünïcødé ✉", nil]])

            let result = try await db.result("SELECT g AS n FROM generate_series(1, 3) g")
            #expect(result.columns == ["n"])
            #expect(result.rows.map { $0[0] } == ["1", "2", "3"])
            try await db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            #expect(try await db.execute("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 5) g") == 5)
            #expect(try await db.execute("UPDATE t SET v = 'y' WHERE id > $1", ["3"]) == 2)
        }
    }

    @Test func timestampsRoundTripInUTC() async throws {
        try await StoreTestDB.with(migrated: false) { db in
            let date = Date(timeIntervalSince1970: 1_790_000_000.123456)
            let rows = try await db.query("SELECT $1::timestamptz, '2026-03-29 01:30:00+02'::timestamptz",
                                          [PGText.timestamp(date)])
            let back = try #require(PGText.timestamp(rows[0][0]))
            #expect(abs(back.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.000_002)
            #expect(rows[0][1] == "2026-03-28 23:30:00+00")
            #expect(PGText.timestamp("2026-03-29 01:30:00+02")?.timeIntervalSince1970
                    == PGText.timestamp(rows[0][1])?.timeIntervalSince1970)
        }
    }

    @Test func sqlErrorsCarrySQLSTATEAndTheConnectionStaysUsable() async throws {
        try await StoreTestDB.with(size: 1, migrated: false) { db in
            await #expect {
                try await db.query("SELEC 1")
            } throws: { error in
                let e = error as? PostgresError
                return e?.sqlState == "42601" && e?.kind == .server && e?.message.contains("syntax") == true
            }
            await #expect {
                try await db.query("SELECT 1 / $1::int", ["0"])
            } throws: { ($0 as? PostgresError)?.sqlState == "22012" }

            try await db.execute("CREATE TABLE u (email text CONSTRAINT u_email_key UNIQUE)")
            try await db.execute("INSERT INTO u VALUES ('a@example.com')")
            do {
                try await db.execute("INSERT INTO u VALUES ($1)", ["a@example.com"])
                Issue.record("no error")
            } catch let error as PostgresError {
                #expect(error.sqlState == "23505")
                #expect(error.isUniqueViolation)
                #expect(error.constraint == "u_email_key")
                #expect(error.detail?.contains("already exists") == true)
                #expect("\(error)".contains("23505"))
            }
            // The one connection of the pool still works.
            #expect(try await db.query("SELECT 1") == [["1"]])
        }
    }

    @Test func transactionsCommitOrRollBack() async throws {
        try await StoreTestDB.with(migrated: false) { db in
            try await db.execute("CREATE TABLE t (id int PRIMARY KEY)")
            let inserted = try await db.transaction { conn in
                try conn.execute("INSERT INTO t VALUES (1)")
                try conn.execute("INSERT INTO t VALUES (2)")
                return try conn.query("SELECT count(*) FROM t").rows[0][0]
            }
            #expect(inserted == "2")

            struct Boom: Error {}
            await #expect(throws: Boom.self) {
                try await db.transaction { conn in
                    try conn.execute("INSERT INTO t VALUES (3)")
                    throw Boom()
                }
            }
            await #expect {
                try await db.transaction { conn in
                    try conn.execute("INSERT INTO t VALUES (4)")
                    try conn.execute("INSERT INTO t VALUES (1)")  // duplicate key
                }
            } throws: { ($0 as? PostgresError)?.sqlState == "23505" }
            #expect(try await db.query("SELECT id FROM t ORDER BY id") == [["1"], ["2"]])
            // No connection was left inside a transaction.
            #expect(try await db.query("""
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND state LIKE 'idle in transaction%'
                """) == [["0"]])
        }
    }

    @Test func aConnectionKilledWhileIdleIsReconnected() async throws {
        try await StoreTestDB.with(size: 1, migrated: false) { db in
            let url = db.url
            let first = try await db.query("SELECT pg_backend_pid()")[0][0]!
            let killer = PostgresClient(url: url, size: 1)
            #expect(try await killer.query("SELECT pg_terminate_backend($1::int)", [first]) == [["t"]])
            await killer.close()
            try await Task.sleep(for: .milliseconds(100))
            let second = try await db.query("SELECT pg_backend_pid()")[0][0]!
            #expect(second != first)
            #expect(try await db.query("SELECT 2") == [["2"]])
        }
    }

    @Test func aConnectionKilledMidQueryFailsThatQueryOnly() async throws {
        try await StoreTestDB.with(size: 1, migrated: false) { db in
            let url = db.url
            let pid = try await db.query("SELECT pg_backend_pid()")[0][0]!
            async let slow = db.query("SELECT pg_sleep(20)")
            try await Task.sleep(for: .milliseconds(300))
            let killer = PostgresClient(url: url, size: 1)
            _ = try await killer.query("SELECT pg_terminate_backend($1::int)", [pid])
            await killer.close()
            do {
                _ = try await slow
                Issue.record("the killed query succeeded")
            } catch let error as PostgresError {
                #expect(error.kind == .connection)
                #expect(error.sqlState == "57P01" || error.sqlState == nil)
            }
            #expect(try await db.query("SELECT 3") == [["3"]])
        }
    }

    @Test func anUnreachableServerIsAConnectionError() async throws {
        let db = PostgresClient(url: "postgres://herald@127.0.0.1:1/none?connect_timeout=2", size: 1)
        await #expect {
            try await db.query("SELECT 1")
        } throws: { ($0 as? PostgresError)?.kind == .connection }
        await db.close()
        await #expect {
            try await db.query("SELECT 1")
        } throws: { ($0 as? PostgresError)?.kind == .closed }
    }

    @Test func streamingDeliversEveryRowAndStopsEarlyOnBreak() async throws {
        try await StoreTestDB.with(size: 1, migrated: false) { db in
            var count = 0
            var sum = 0
            for try await row in db.stream("SELECT g, md5(g::text) FROM generate_series(1, $1::int) g", ["100000"],
                                           buffer: 1000) {
                count += 1
                sum += Int(row[0]!)!
            }
            #expect(count == 100_000)
            #expect(sum == 100_000 * 100_001 / 2)

            // Leaving early cancels the query and gives the (only) connection back.
            try await db.execute("CREATE TABLE s AS SELECT g AS id FROM generate_series(1, 10000) g")
            var taken = 0
            let started = Date()
            // 100 million rows, produced lazily by a nested loop (nothing materialized first).
            for try await _ in db.stream("SELECT a.id, b.id FROM s a, s b") {
                taken += 1
                if taken == 10 { break }
            }
            #expect(taken == 10)
            #expect(try await db.query("SELECT 'free'") == [["free"]])
            #expect(Date().timeIntervalSince(started) < 10)

            // An error in the middle of a stream reaches the consumer.
            var seen = 0
            await #expect {
                for try await _ in db.stream("SELECT 10 / (5000 - g) FROM generate_series(1, 10000) g") { seen += 1 }
            } throws: { ($0 as? PostgresError)?.sqlState == "22012" }
            #expect(seen < 5000)
            #expect(try await db.query("SELECT 4") == [["4"]])
        }
    }

    @Test func rowsStreamOnTheConnectionThreadWithACallback() async throws {
        try await StoreTestDB.with(size: 1, migrated: false) { db in
            let (count, last) = try await db.withConnection { conn -> (Int, String?) in
                var last: String?
                let count = try conn.forEachRow("SELECT g FROM generate_series(1, 20000) g") { row in
                    last = row[0]
                    return true
                }
                return (count, last)
            }
            #expect(count == 20_000)
            #expect(last == "20000")
            let stopped = try await db.withConnection { conn in
                try conn.forEachRow("SELECT g FROM generate_series(1, 10000000) g") { row in row[0] != "5" }
            }
            #expect(stopped == 5)
        }
    }

    @Test func copyInFromAnAsyncSequence() async throws {
        try await StoreTestDB.with(migrated: false) { db in
            try await db.execute("CREATE TABLE c (id int PRIMARY KEY, note text)")
            var text = ""
            for n in 1...20_000 { text += "\(n)\tnote \\\\ with\\ttab \(n)\n" }
            let copied = try await db.copyIn("COPY c (id, note) FROM STDIN", from: StoreChunks(text, size: 4093))
            #expect(copied == 20_000)
            #expect(try await db.query("SELECT note FROM c WHERE id = 7") == [["note \\ with\ttab 7"]])

            // A bad row aborts the whole COPY, with its SQLSTATE; nothing is copied.
            await #expect {
                try await db.copyIn("COPY c (id, note) FROM STDIN", from: StoreChunks("30001\tok\nnot-a-number\tbad\n"))
            } throws: { ($0 as? PostgresError)?.sqlState == "22P02" }
            #expect(try await db.query("SELECT count(*) FROM c") == [["20000"]])
        }
    }

    @Test func copyRowsAreEscaped() async throws {
        try await StoreTestDB.with(size: 1, migrated: false) { db in
            try await db.execute("CREATE TABLE e (a text, b text)")
            let values: [[String?]] = [["tab\there", "new\nline"], ["back\\slash", nil], ["cr\rlf", "\\N"]]
            let copied = try await db.withConnection { conn in
                try conn.copyIn("COPY e FROM STDIN") { writer in
                    for row in values { try writer.writeRow(row) }
                }
            }
            #expect(copied == 3)
            #expect(try await db.query("SELECT a, b FROM e") == values)
        }
    }

    /// Fields written from bytes get the same escapes as `writeRow`, escapes at either
    /// end and next to each other included; numbers and NULLs sit among them.
    @Test func copyFieldsFromBytesAreEscaped() async throws {
        try await StoreTestDB.with(size: 1, migrated: false) { db in
            try await db.execute("CREATE TABLE f (n bigint, a text, b text)")
            let texts = ["\\\t\r\n", "\tlead", "trail\\", "a\\\\b\t\tc\r\nd", "\\N", "", "plain",
                         "ünïcødé ✉️ 名前", String(repeating: "x\t", count: 50_000)]
            let copied = try await db.withConnection { conn in
                try conn.copyIn("COPY f (n, a, b) FROM STDIN") { writer in
                    for (index, text) in texts.enumerated() {
                        writer.writeField(index * 1_000_000_007)
                        writer.writeField(Array(text.utf8)[...])
                        if index % 2 == 0 { writer.writeNull() } else { writer.writeField(text.utf8) }
                        try writer.endRow()
                    }
                }
            }
            #expect(copied == texts.count)
            let rows = try await db.query("SELECT n, a, b FROM f ORDER BY n")
            #expect(rows == texts.enumerated().map { index, text in
                [String(index * 1_000_000_007), text, index % 2 == 0 ? nil : text]
            })
        }
    }

    @Test func cancellingTheTaskCancelsTheQuery() async throws {
        try await StoreTestDB.with(size: 1, migrated: false) { db in
            let started = Date()
            let task = Task { try await db.query("SELECT pg_sleep(30)") }
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            let result = await task.result
            #expect(Date().timeIntervalSince(started) < 10)
            switch result {
            case .success: Issue.record("the query was not cancelled")
            case .failure(let error):
                #expect((error as? PostgresError)?.sqlState == "57014" || error is CancellationError)
            }
            #expect(try await db.query("SELECT 5") == [["5"]])
        }
    }

    @Test func workRunsOnDedicatedThreadsInParallel() async throws {
        // Four queries that each wait until they have seen all four running at once (then
        // linger, so the others see them): on four threads in parallel each sees the
        // other three; run one after another, each would see only itself.
        try await StoreTestDB.with(size: 4, migrated: false) { db in
            _ = try await db.query("""
                CREATE FUNCTION wait_for_peers(n int) RETURNS int LANGUAGE plpgsql AS $$
                DECLARE seen int; most int := 0;
                BEGIN
                    FOR i IN 1..500 LOOP
                        PERFORM pg_stat_clear_snapshot();
                        SELECT count(*) INTO seen FROM pg_stat_activity
                        WHERE state = 'active' AND query LIKE 'SELECT wait_for_peers(%';
                        most := greatest(most, seen);
                        EXIT WHEN most >= n;
                        PERFORM pg_sleep(0.02);
                    END LOOP;
                    -- Stay a while, so that the others see this one too.
                    PERFORM pg_sleep(2);
                    RETURN most;
                END $$
                """)
            let seen = try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<4 { group.addTask { try await db.query("SELECT wait_for_peers(4)")[0][0] } }
                return try await group.reduce(into: [String?]()) { $0.append($1) }
            }
            #expect(seen == ["4", "4", "4", "4"], "each query saw this many running: \(seen)")
        }
        // With one connection, all work runs on its one thread, which is not the caller's.
        try await StoreTestDB.with(size: 1, migrated: false) { db in
            let caller = pthread_self()
            let first = try await db.withConnection { _ in UInt(pthread_self()) }
            let second = try await db.withConnection { _ in UInt(pthread_self()) }
            #expect(first == second)
            #expect(first != UInt(caller))
        }
    }
}

extension StorePostgresClientTests {
    @Test func sessionDefaultsAndURLOverrides() async throws {
        let url = try await StoreTestDB.freshURL()
        let plain = PostgresClient(url: url, size: 1)
        #expect(try await plain.query("SELECT current_setting('application_name'), current_setting('TimeZone')")
                == [["herald", "UTC"]])
        await plain.close()
        let named = PostgresClient(url: url + "?application_name=herald-test", size: 1)
        #expect(try await named.query("SELECT current_setting('application_name')") == [["herald-test"]])
        await named.close()
    }
}

@Suite("PostgresServer (test support)", .enabled(if: PostgresServer.isAvailable))
struct StorePostgresServerTests {
    @Test func aPrivateServerStartsServesAndIsRemoved() async throws {
        let server = try await PostgresServer.start()
        let directory = server.directory
        #expect(FileManager.default.fileExists(atPath: directory + "/data/PG_VERSION"))
        #expect(server.url.hasPrefix("postgres://herald@127.0.0.1:\(server.port)/"))
        let url = try await server.createDatabase(prefix: "own")
        let db = PostgresClient(url: url, size: 1)
        #expect(try await db.query("SELECT current_database() LIKE 'own_%', current_setting('fsync')") == [["t", "on"]])
        // TCP on loopback only.
        #expect(try await db.query("SELECT current_setting('listen_addresses')") == [["127.0.0.1"]])
        await db.close()
        server.stop()
        #expect(!server.isRunning)
        #expect(!FileManager.default.fileExists(atPath: directory))
        server.stop()  // idempotent
    }
}
