import Foundation
import HeraldTestSupport
import Postgres
import Testing

@testable import CampaignStore

@Suite("CSV reader")
struct StoreCSVReaderTests {
    static func records(_ text: String, chunk: Int) -> [CSVRecord] {
        var reader = CSVReader(maxRecordBytes: 200)
        var out: [CSVRecord] = []
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = Swift.min(bytes.count, offset + chunk)
            Array(bytes[offset..<end]).withUnsafeBufferPointer { reader.feed($0) { out.append($0) } }
            offset = end
        }
        reader.finish { out.append($0) }
        return out
    }

    static func strings(_ record: CSVRecord) -> [String] {
        record.fields.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func quotingLineEndsAndBOMWhateverTheChunking() {
        let text = "\u{FEFF}email,name,note\r\n"
            + "a@example.com,\"Doe, Jane\",\"said \"\"hi\"\"\"\r\n"
            + "\r\n"
            + "b@example.com,\"two\nlines\",\n"
            + "c@example.com,,\"\"\n"
            + "d@example.com,last line without end,x"
        let expected: [(Int, [String])] = [
            (1, ["email", "name", "note"]),
            (2, ["a@example.com", "Doe, Jane", "said \"hi\""]),
            (4, ["b@example.com", "two\nlines", ""]),
            (6, ["c@example.com", "", ""]),
            (7, ["d@example.com", "last line without end", "x"]),
        ]
        for chunk in [1, 2, 3, 5, 7, 64, 10_000] {
            let records = Self.records(text, chunk: chunk)
            #expect(records.map(\.line) == expected.map(\.0), "chunk \(chunk)")
            #expect(records.map(Self.strings) == expected.map(\.1), "chunk \(chunk)")
            #expect(records.allSatisfy { $0.problem == nil }, "chunk \(chunk)")
        }
    }

    @Test func problemsAreReportedPerRecordAndReadingResumes() {
        let text = "a,b\n"
            + "\"x\"y,z\n"  // stray character after a closing quote
            + String(repeating: "long", count: 80) + ",q\n"  // longer than 200 bytes
            + "ok,fine\n"
            + "\"never closed,at all\n"
        for chunk in [1, 4, 1000] {
            let records = Self.records(text, chunk: chunk)
            #expect(records.map(\.line) == [1, 2, 3, 4, 5], "chunk \(chunk)")
            #expect(records[1].problem == "a character follows a closing quote")
            #expect(records[2].problem == "the record is longer than 200 bytes")
            #expect(records[3].problem == nil && Self.strings(records[3]) == ["ok", "fine"])
            #expect(records[4].problem == "a quoted field is not closed before the end of the file")
        }
    }

    @Test func aLoneBOMPrefixIsData() {
        #expect(Self.records("\u{EF}x\n", chunk: 1).map(Self.strings) == [["\u{EF}x"]])
        #expect(Self.records("", chunk: 1).isEmpty)
        #expect(Self.records("\n\n", chunk: 1).isEmpty)
    }
}

@Suite("CSV import", .enabled(if: PostgresServer.isAvailable))
struct StoreImportTests {
    @Test func importReportsRejectedLinesWithNumbersAndReasons() async throws {
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let list = try await ListStore(db).createList(tenant: tenant.id, name: "csv")
            let csv = #"""
                Email,First Name,last_name,Plan,,Company
                ada@example.com,Ada,Lovelace,pro,ignored,"Analytical, Ltd"
                not-an-address,Bob,,free,,
                "grace@example.com","Grace","Hopper",,,"Navy ""Yard"""
                ADA@EXAMPLE.COM,Ada again,,,,
                ,no email,,,,
                alan@example.com,Alan,Turing,free,,Bletchley,extra
                linus@exa mple.com,Linus,,,,
                \#u{FEFF}

                margaret@example.com,Margaret,"Hamilton
                (NASA)",pro,,

                """#
            let store = SubscriberStore(db)
            let report = try #require(try await store.importCSV(tenant: tenant.id, listID: list.id,
                                                                from: StoreChunks(csv, size: 5)))
            #expect(report.rows == 9)
            #expect(report.created == 3)
            #expect(report.updated == 0)
            #expect(report.unchanged == 0)
            #expect(report.addedToList == 3)
            #expect(report.rejected == 6)
            #expect(!report.rejectionsTruncated)
            #expect(report.rejections.map(\.line) == [3, 5, 6, 7, 8, 9])
            #expect(report.rejections[0].reason.hasPrefix("invalid address"))
            #expect(report.rejections[0].email == "not-an-address")
            #expect(report.rejections[1].reason == "duplicate of line 2")
            #expect(report.rejections[1].email == "ada@example.com")
            #expect(report.rejections[2].reason == "no email address")
            #expect(report.rejections[3].reason == "7 fields, but the header has 6")
            #expect(report.rejections[4].reason.hasPrefix("invalid address"))
            #expect(report.rows == report.created + report.updated + report.unchanged + report.rejected)

            let ada = try #require(try await store.subscriber(tenant: tenant.id, email: "ada@example.com", listID: list.id))
            #expect(ada.firstName == "Ada")  // the first line wins
            #expect(ada.lastName == "Lovelace")
            #expect(ada.attributes == ["Plan": "pro", "Company": "Analytical, Ltd"])
            let grace = try #require(try await store.subscriber(tenant: tenant.id, email: "grace@example.com"))
            #expect(grace.attributes == ["Company": "Navy \"Yard\""])
            let margaret = try #require(try await store.subscriber(tenant: tenant.id, email: "margaret@example.com"))
            #expect(margaret.lastName == "Hamilton\n(NASA)")

            // Importing again changes nothing; a changed line updates without touching status.
            _ = try await store.setStatus(tenant: tenant.id, id: ada.id, .unsubscribed)
            let again = try #require(try await store.importCSV(tenant: tenant.id, listID: list.id, from: StoreChunks(csv, size: 4096)))
            #expect(again.created == 0 && again.updated == 0 && again.unchanged == 3 && again.addedToList == 0)
            let changed = try #require(try await store.importCSV(
                tenant: tenant.id, listID: list.id,
                from: StoreChunks("email,plan\nada@example.com,team\nnew@example.com,free\n")))
            #expect(changed.created == 1 && changed.updated == 1 && changed.unchanged == 0 && changed.addedToList == 1)
            let updated = try #require(try await store.subscriber(tenant: tenant.id, id: ada.id))
            #expect(updated.status == .unsubscribed)
            #expect(updated.attributes == ["Plan": "pro", "Company": "Analytical, Ltd", "plan": "team"])
        }
    }

    @Test func badFilesAreRefusedWholeWithNothingWritten() async throws {
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let list = try await ListStore(db).createList(tenant: tenant.id, name: "csv")
            let store = SubscriberStore(db)
            for (csv, fragment) in [
                ("name,city\nAda,London\n", "no email column"),
                ("", "empty"),
                ("\n\n", "empty"),
                ("email,Email\na@example.com,b@example.com\n", "twice"),
                ("email,plan,plan\na@example.com,x,y\n", "twice"),
            ] {
                await #expect {
                    try await store.importCSV(tenant: tenant.id, listID: list.id, from: StoreChunks(csv))
                } throws: { error in
                    guard let error = error as? StoreError else { return false }
                    return error.kind == .invalid && error.message.contains(fragment)
                }
            }
            // Bytes that are not UTF-8 and NUL bytes reject their line only.
            var bytes = Array("email,name\nok@example.com,fine\nbad@example.com,".utf8) + [0xC3, 0x28] + Array("\n".utf8)
            bytes += Array("nul@example.com,a".utf8) + [0] + Array("b\n".utf8)
            let report = try #require(try await store.importCSV(tenant: tenant.id, listID: list.id,
                                                                from: StoreChunks(bytes: bytes, size: 3)))
            #expect(report.created == 1)
            #expect(report.rejections.map(\.line) == [3, 4])
            #expect(report.rejections.map(\.reason) == ["not valid UTF-8", "contains a NUL byte"])
            #expect(try await db.query("SELECT email FROM subscribers") == [["ok@example.com"]])
        }
    }

    /// A source that fails half-way: the import rolls back entirely.
    @Test func aFailingUploadRollsBack() async throws {
        struct Broken: Error {}
        struct FailingChunks: AsyncSequence, Sendable {
            typealias Element = [UInt8]
            struct AsyncIterator: AsyncIteratorProtocol {
                var n = 0
                mutating func next() async throws -> [UInt8]? {
                    n += 1
                    if n == 1 { return Array("email\n".utf8) }
                    if n < 50 { return Array("u\(n)@example.com\n".utf8) }
                    throw Broken()
                }
            }
            func makeAsyncIterator() -> AsyncIterator { AsyncIterator() }
        }
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let list = try await ListStore(db).createList(tenant: tenant.id, name: "csv")
            await #expect(throws: Broken.self) {
                try await SubscriberStore(db).importCSV(tenant: tenant.id, listID: list.id, from: FailingChunks())
            }
            #expect(try await db.query("SELECT count(*) FROM subscribers") == [["0"]])
            #expect(try await db.query("SELECT 1") == [["1"]])
        }
    }

    /// What COPY's text format escapes (tab, backslash, line ends, `\N`), what JSON
    /// escapes (quotes, backslashes, control characters) and UTF-8 come back exactly as
    /// the file had them, in names and in attributes (keys too).
    @Test func valuesSurviveTheCopyEncodingExactly() async throws {
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let (other, _) = try await StoreTestDB.tenant(db, "other")
            let list = try await ListStore(db).createList(tenant: tenant.id, name: "csv")
            let store = SubscriberStore(db)
            // The other tenant has one of the addresses: it stays as it is.
            _ = try await db.execute("INSERT INTO subscribers (tenant_id, email, first_name) VALUES ($1, 'zoë@example.com', 'Other')",
                                     [other.id.parameter])
            let key = "Note \"q\" \\ ✓"
            var csv = "email,first_name,last_name,name,\"Note \"\"q\"\" \\ ✓\",city\n"
            csv += "tab@example.com,\"a\tb\",\\N,\"back\\slash\",\"\t\\t\\\\N\",Zürich\n"
            csv += "ZOË@example.com,Zoë,\"O'Brien \"\"Jr\"\"\",\"two\r\nlines\",\"ctl \u{01}\u{1F} \\u0000 \"\"x\"\"\",東京 🏙️\n"
            csv += "nul@example.com,x,,,\"a\u{0}b\",\n"
            csv += "cr@example.com,\" padded \",,,\" kept \",\"a\rb\"\n"
            let report = try #require(try await store.importCSV(tenant: tenant.id, listID: list.id, from: StoreChunks(csv, size: 3)))
            #expect(report.created == 3 && report.addedToList == 3)
            #expect(report.rejections.map(\.line) == [5])  // the record before spans lines 3 and 4
            #expect(report.rejections.map(\.reason) == ["contains a NUL byte"])

            let tab = try #require(try await store.subscriber(tenant: tenant.id, email: "tab@example.com"))
            #expect(tab.firstName == "a\tb")
            #expect(tab.lastName == "\\N")
            #expect(tab.name == "back\\slash")
            #expect(tab.attributes == [key: "\t\\t\\\\N", "city": "Zürich"])
            let zoe = try #require(try await store.subscriber(tenant: tenant.id, email: "zoë@example.com", listID: list.id))
            #expect(zoe.firstName == "Zoë")
            #expect(zoe.lastName == "O'Brien \"Jr\"")
            #expect(zoe.name == "two\r\nlines")
            #expect(zoe.attributes == [key: "ctl \u{01}\u{1F} \\u0000 \"x\"", "city": "東京 🏙️"])
            let cr = try #require(try await store.subscriber(tenant: tenant.id, email: "cr@example.com"))
            #expect(cr.firstName == "padded")  // names are trimmed, attributes are not
            #expect(cr.attributes == [key: " kept ", "city": "a\rb"])
            // The same bytes as JSON text, as PostgreSQL stores them.
            #expect(try await db.query("SELECT attributes->>'city' FROM subscribers WHERE tenant_id = $1 AND email = 'zoë@example.com'",
                                       [tenant.id.parameter]) == [["東京 🏙️"]])

            let theirs = try await db.query("SELECT first_name, attributes::text FROM subscribers WHERE tenant_id = $1",
                                            [other.id.parameter])
            #expect(theirs == [["Other", "{}"]])
        }
    }

    /// The import inserts addresses new to the tenant with a plain INSERT; when another
    /// transaction adds one of them meanwhile, that insert fails, and the import falls
    /// back to the upsert with the same result a lone import would have had.
    @Test func anAddressAddedMeanwhileByAnotherTransactionIsUpserted() async throws {
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let list = try await ListStore(db).createList(tenant: tenant.id, name: "csv")
            let store = SubscriberStore(db)
            _ = try #require(try await store.importCSV(tenant: tenant.id, listID: list.id,
                                                       from: StoreChunks("email,first_name\nold@example.com,Old\n")))

            let inserted = AsyncStream<Void>.makeStream()
            let release = DispatchSemaphore(value: 0)
            let blocker = Task {
                try await db.withConnection { connection in
                    try connection.inTransaction {
                        try connection.execute("INSERT INTO subscribers (tenant_id, email, first_name) VALUES ($1, 'b@example.com', 'Theirs')",
                                               [tenant.id.parameter])
                        inserted.continuation.yield()
                        release.wait()
                    }
                }
            }
            for await _ in inserted.stream { break }
            let importing = Task {
                try await store.importCSV(tenant: tenant.id, listID: list.id, from: StoreChunks(
                    "email,first_name\na@example.com,A\nb@example.com,Ours\nold@example.com,Older\nc@example.com,C\na@example.com,again\n"))
            }
            // The import's insert waits for the other transaction's row; then it commits.
            var waited = false
            for _ in 0..<600 {
                let waiting = try await db.query("""
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%WITH new AS%'
                    """)
                if waiting == [["1"]] { waited = true; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            release.signal()
            try await blocker.value
            #expect(waited)
            let report = try #require(try await importing.value)
            #expect(report.rows == 5 && report.rejected == 1)
            #expect(report.rejections.map(\.reason) == ["duplicate of line 2"])
            #expect(report.created == 2 && report.updated == 2 && report.unchanged == 0)
            #expect(report.addedToList == 3)
            let b = try #require(try await store.subscriber(tenant: tenant.id, email: "b@example.com", listID: list.id))
            #expect(b.firstName == "Ours")
            #expect(try await db.query("SELECT count(*) FROM list_members WHERE list_id = $1", [String(list.id)]) == [["4"]])
        }
    }

    @Test func import100000GeneratedRows() async throws {
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let list = try await ListStore(db).createList(tenant: tenant.id, name: "big")
            let rows = 100_000
            let invalid: Set<Int> = [5, 777, 50_001, 100_001]
            let duplicates: Set<Int> = [3, 99_999]
            let source = GeneratedCSV(rows: rows, invalidLines: invalid, duplicateLines: duplicates)
            let started = ContinuousClock.now
            let report = try #require(try await SubscriberStore(db).importCSV(tenant: tenant.id, listID: list.id,
                                                                               from: source, maxListedRejections: 5))
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("import: \(rows) rows in \(String(format: "%.2f", seconds)) s = \(Int(Double(rows) / seconds)) rows/s")

            #expect(report.rows == rows)
            #expect(report.rejected == invalid.count + duplicates.count)
            #expect(report.created == rows - invalid.count - duplicates.count)
            #expect(report.addedToList == report.created)
            #expect(report.rejectionsTruncated)
            #expect(report.rejections.map(\.line) == [3, 5, 777, 50_001, 99_999])
            #expect(report.rejections.map { $0.reason.hasPrefix("invalid address") }
                    == [false, true, true, true, false])
            #expect(report.rejections[0].reason == "duplicate of line 2")
            #expect(try await db.query("SELECT count(*) FROM list_members WHERE list_id = $1", [String(list.id)])
                    == [[String(report.created)]])
            let sample = try #require(try await SubscriberStore(db).subscriber(tenant: tenant.id, email: "user4242@example.com"))
            #expect(sample.firstName == "First4242")
            #expect(sample.lastName == "Last, 4242")
            #expect(sample.attributes == ["plan": "pro", "city": .string("City \(4242 % 97)")])
        }
    }
}
