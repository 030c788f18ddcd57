import Foundation
import Postgres

/// A CSV line the import did not take, and why.
public struct ImportRejection: Sendable, Equatable, Codable {
    /// 1-based line number in the file (the header is line 1).
    public var line: Int
    public var reason: String
    /// The email field as written (cut to 254 characters), when there was one.
    public var email: String?
}

/// What a CSV import did.
public struct ImportReport: Sendable, Equatable, Codable {
    /// Data records read (the header and blank lines not counted).
    public var rows: Int
    /// Addresses new to the tenant.
    public var created: Int
    /// Addresses the tenant had, whose name or attributes the file changed.
    public var updated: Int
    /// Addresses the tenant had, unchanged by the file.
    public var unchanged: Int
    /// Subscribers added to the list (new memberships).
    public var addedToList: Int
    /// Records rejected (invalid, duplicate): `rows == created + updated + unchanged + rejected`.
    public var rejected: Int
    /// The first rejections by line number (at most the import's limit).
    public var rejections: [ImportRejection]
    /// True when there were more rejections than listed.
    public var rejectionsTruncated: Bool
}

/// The column a CSV header cell maps to.
enum ImportColumn: Equatable {
    case email, name, firstName, lastName
    case attribute(String)
    case ignored

    static func from(header cell: String) -> ImportColumn {
        let trimmed = cell.trimmingCharacters(in: .whitespaces)
        switch trimmed.lowercased().replacingOccurrences(of: " ", with: "_").replacingOccurrences(of: "-", with: "_") {
        case "": return .ignored
        case "email", "e_mail", "email_address": return .email
        case "name", "full_name": return .name
        case "first_name", "firstname", "given_name": return .firstName
        case "last_name", "lastname", "surname", "family_name": return .lastName
        default: return .attribute(trimmed)
        }
    }
}

extension SubscriberStore {
    /// Imports a CSV file into the list, streaming: `chunks` are the file's bytes as
    /// they arrive (an HTTP upload), handed to a connection thread through a small
    /// bounded queue, parsed there and fed to `COPY … FROM STDIN` into a temporary
    /// table; then the subscribers are merged in: addresses the tenant has by an upsert,
    /// new ones by a plain insert that also adds their memberships (see
    /// `mergeNewAddressesApart`). Memory stays flat whatever the file's size (duplicates within
    /// the file are found by PostgreSQL, not by a set in memory).
    ///
    /// The header row names the columns: `email` (required; also `e-mail`,
    /// `email_address`), `name`, `first_name`, `last_name` (and a few synonyms); every
    /// other named column becomes a string attribute. An empty cell leaves the stored
    /// value as it is. Existing subscribers keep their status (an unsubscribed address
    /// stays unsubscribed). A record is rejected, with its line number, when its
    /// address is invalid, when the address appeared on an earlier line (the first one
    /// wins), when it has more fields than the header, or when it is not valid UTF-8.
    ///
    /// All or nothing: one transaction. nil when the list does not exist for this
    /// tenant; `StoreError(.invalid)` for a file without a usable header.
    public func importCSV<Chunks: AsyncSequence>(
        tenant: TenantID, listID: Int64, from chunks: Chunks, maxListedRejections: Int = 1000
    ) async throws -> ImportReport? where Chunks.Element: Sequence & Sendable, Chunks.Element.Element == UInt8 {
        let limit = max(0, maxListedRejections)
        return try await db.withConnection(feeding: chunks, transaction: true) { connection, next in
            try Self.runImport(connection, tenant: tenant, listID: listID, next: next, limit: limit)
        }
    }

    private static func runImport<Chunk: Sequence>(
        _ connection: PostgresConnection, tenant: TenantID, listID: Int64, next: () throws -> Chunk?, limit: Int
    ) throws -> ImportReport? where Chunk.Element == UInt8 {
        let t = tenant.parameter, l = String(listID)
        guard try !connection.query("SELECT 1 FROM lists WHERE tenant_id = $1 AND id = $2 FOR KEY SHARE", [t, l])
            .rows.isEmpty
        else { return nil }
        try connection.execute("""
            CREATE TEMPORARY TABLE import_rows (
                line integer NOT NULL, email text NOT NULL, name text, first_name text, last_name text,
                attributes jsonb NOT NULL
            ) ON COMMIT DROP
            """)

        var parser = CSVImportParser(limit: limit)
        try connection.copyIn("COPY import_rows (line, email, name, first_name, last_name, attributes) FROM STDIN") { writer in
            let emit: (CSVRecord) throws -> Void = { record in try parser.take(record, into: writer) }
            var reader = CSVReader()
            while let chunk = try next() {
                let done: Void? = try chunk.withContiguousStorageIfAvailable { try reader.feed($0, emit) }
                if done == nil {
                    try Array(chunk).withUnsafeBufferPointer { try reader.feed($0, emit) }
                }
            }
            try reader.finish(emit)
            guard parser.columns != nil else { throw StoreError(.invalid, "the file is empty: a header row with an email column is needed") }
        }
        let valid = parser.rows - parser.rejected
        // Statistics for the plans of the merge: only the address's matter (the jsonb
        // column's took two thirds of the time, measured on 300,000 rows).
        try connection.execute("ANALYZE import_rows (email)")

        let merged = try merge(connection, tenant: t, list: l)

        // Duplicates within the file: every line but the first for each address.
        let duplicateCount = valid - merged.distinct
        var rejections = parser.rejections
        if duplicateCount > 0 && limit > 0 {
            let rows = try connection.query("""
                SELECT line, email, first_line FROM (
                    SELECT line, email, min(line) OVER (PARTITION BY email) AS first_line FROM import_rows
                ) d WHERE line <> first_line ORDER BY line LIMIT $1
                """, [String(limit)]).rows
            for row in rows {
                rejections.append(ImportRejection(line: try PGText.require(row, 0, PGText.int),
                                                  reason: "duplicate of line \(try PGText.require(row, 2))",
                                                  email: row[1]))
            }
            rejections.sort { $0.line < $1.line }
            if rejections.count > limit { rejections.removeLast(rejections.count - limit) }
        }
        return ImportReport(rows: parser.rows, created: merged.created, updated: merged.updated,
                            unchanged: merged.distinct - merged.created - merged.updated, addedToList: merged.addedToList,
                            rejected: parser.rejected + duplicateCount, rejections: rejections,
                            rejectionsTruncated: parser.rejected + duplicateCount > rejections.count)
    }

    /// Merges `import_rows` into the subscribers and the list: the fast way first; if a
    /// concurrent transaction added one of the file's new addresses meanwhile, the plain
    /// insert meets its row, and the merge is undone and redone by the upsert.
    private static func merge(_ connection: PostgresConnection, tenant t: String, list l: String) throws -> ImportMerge {
        try connection.execute("SAVEPOINT import_merge")
        do {
            let merged = try mergeNewAddressesApart(connection, tenant: t, list: l)
            try connection.execute("RELEASE SAVEPOINT import_merge")
            return merged
        } catch let error as PostgresError where error.isUniqueViolation {
            try connection.execute("ROLLBACK TO SAVEPOINT import_merge")
            return try mergeByUpsert(connection, tenant: t, list: l)
        }
    }

    /// What merging `import_rows` into the tenant's subscribers and the list did.
    private struct ImportMerge {
        /// Distinct addresses in `import_rows`.
        var distinct = 0
        var created = 0
        var updated = 0
        var addedToList = 0
    }

    /// The upsert of the first line of each address of `import_rows` that `filter`
    /// (a condition on `i`, a row of `import_rows`) keeps: first row, distinct
    /// addresses; second and third, subscribers created and updated. Rows go in address
    /// order, so that concurrent imports into one tenant take row locks in the same
    /// order. An existing subscriber keeps its status; empty cells keep stored values.
    private static func upsertSQL(where filter: String) -> String {
        """
        WITH src AS (
            SELECT DISTINCT ON (i.email) i.email, i.name, i.first_name, i.last_name, i.attributes
            FROM import_rows i WHERE \(filter) ORDER BY i.email, i.line
        ), up AS (
            INSERT INTO subscribers AS s (tenant_id, email, name, first_name, last_name, attributes)
            SELECT $1, email, name, first_name, last_name, attributes FROM src ORDER BY email
            ON CONFLICT (tenant_id, email) DO UPDATE SET
                name = coalesce(EXCLUDED.name, s.name),
                first_name = coalesce(EXCLUDED.first_name, s.first_name),
                last_name = coalesce(EXCLUDED.last_name, s.last_name),
                attributes = s.attributes || EXCLUDED.attributes,
                updated_at = now()
            WHERE (s.name, s.first_name, s.last_name, s.attributes) IS DISTINCT FROM
                  (coalesce(EXCLUDED.name, s.name), coalesce(EXCLUDED.first_name, s.first_name),
                   coalesce(EXCLUDED.last_name, s.last_name), s.attributes || EXCLUDED.attributes)
            RETURNING (xmax = 0) AS inserted
        )
        SELECT (SELECT count(*) FROM src), count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
        """
    }

    /// Adds to the list every subscriber whose address is in `import_rows` (those
    /// already members stay as they are); returns how many were added.
    private static func addMembers(_ connection: PostgresConnection, tenant t: String, list l: String) throws -> Int {
        try connection.execute("""
            INSERT INTO list_members (tenant_id, list_id, subscriber_id)
            SELECT $1, $2, s.id FROM (SELECT DISTINCT email FROM import_rows) i
            JOIN subscribers s ON s.tenant_id = $1 AND s.email = i.email
            ORDER BY s.id
            ON CONFLICT DO NOTHING
            """, [t, l])
    }

    private static func upsert(_ connection: PostgresConnection, tenant t: String, where filter: String) throws -> ImportMerge {
        let counts = try connection.query(upsertSQL(where: filter), [t]).rows[0]
        return ImportMerge(distinct: try PGText.require(counts, 0, PGText.int),
                           created: try PGText.require(counts, 1, PGText.int),
                           updated: try PGText.require(counts, 2, PGText.int))
    }

    /// Every address through `INSERT … ON CONFLICT`, then the memberships by a join:
    /// right whatever runs concurrently, but each row pays for a speculative insertion
    /// and each membership for a conflict check.
    private static func mergeByUpsert(_ connection: PostgresConnection, tenant t: String, list l: String) throws -> ImportMerge {
        var merged = try upsert(connection, tenant: t, where: "true")
        merged.addedToList = try addMembers(connection, tenant: t, list: l)
        return merged
    }

    /// The same result in two parts. Addresses the tenant already has go through the
    /// upsert and the membership join (skipped when there are none, as in a first
    /// import). The others are inserted by a plain `INSERT` (about half the cost per
    /// row of a speculative one, measured), and their memberships come from its
    /// `RETURNING` ids: new subscribers cannot be members yet, so no join and no
    /// conflict check. A unique violation means another transaction added one of
    /// those addresses after this one looked: the caller then falls back to
    /// ``mergeByUpsert(_:tenant:list:)``.
    private static func mergeNewAddressesApart(_ connection: PostgresConnection, tenant t: String, list l: String) throws -> ImportMerge {
        var merged = try upsert(connection, tenant: t, where: """
            EXISTS (SELECT 1 FROM subscribers e WHERE e.tenant_id = $1 AND e.email = i.email)
            """)
        if merged.distinct > 0 { merged.addedToList = try addMembers(connection, tenant: t, list: l) }
        let created = try connection.execute("""
            WITH new AS (
                INSERT INTO subscribers (tenant_id, email, name, first_name, last_name, attributes)
                SELECT DISTINCT ON (i.email) $1::bigint, i.email, i.name, i.first_name, i.last_name, i.attributes
                FROM import_rows i
                WHERE NOT EXISTS (SELECT 1 FROM subscribers e WHERE e.tenant_id = $1 AND e.email = i.email)
                ORDER BY i.email, i.line
                RETURNING id
            )
            INSERT INTO list_members (tenant_id, list_id, subscriber_id)
            SELECT $1, $2, id FROM new ORDER BY id
            """, [t, l])
        merged.distinct += created
        merged.created += created
        merged.addedToList += created
        return merged
    }
}

/// Turns CSV records into `import_rows` COPY rows, keeping count of what it rejects.
struct CSVImportParser {
    let limit: Int
    /// From the header; nil until it is read.
    private(set) var columns: [ImportColumn]?
    private var emailIndex = 0
    /// Per column, the attribute's name as a JSON string (empty for other columns).
    private var attributeKeys: [[UInt8]] = []
    private(set) var rows = 0
    private(set) var rejected = 0
    private(set) var rejections: [ImportRejection] = []

    init(limit: Int) {
        self.limit = limit
    }

    /// The attributes object of the record being taken (reused from row to row).
    private var attributes: [UInt8] = []

    /// Writes the COPY row for `record` to `writer`: the fields' bytes are checked, then
    /// written escaped, with no `String` made per field. Nothing for the header or a
    /// rejected record.
    mutating func take(_ record: CSVRecord, into writer: PostgresCopyWriter) throws {
        guard let columns else {
            try readHeader(record)
            return
        }
        rows += 1
        let rawEmail = record.count > emailIndex ? record[emailIndex] : []
        func reject(_ reason: String) {
            rejected += 1
            if rejections.count < limit {
                rejections.append(ImportRejection(line: record.line, reason: reason,
                                                  email: rawEmail.isEmpty ? nil : String(decoding: rawEmail.prefix(254), as: UTF8.self)))
            }
        }
        if let problem = record.problem { return reject(problem) }
        if record.count > columns.count {
            return reject("\(record.count) fields, but the header has \(columns.count)")
        }
        var email: [UInt8]?
        var name: ArraySlice<UInt8>?, firstName: ArraySlice<UInt8>?, lastName: ArraySlice<UInt8>?
        attributes.removeAll(keepingCapacity: true)
        attributes.append(UInt8(ascii: "{"))
        for index in 0..<record.count {
            let bytes = record[index]
            if bytes.isEmpty { continue }
            guard ByteText.isValidUTF8(bytes) else { return reject("not valid UTF-8") }
            if bytes.contains(0) { return reject("contains a NUL byte") }
            switch columns[index] {
            case .email:
                switch SubscriberAddress.normalized(bytes: bytes) {
                case .success(let address): email = address
                case .failure(let error): return reject("invalid address: \(error.message)")
                }
            case .name, .firstName, .lastName:
                let value = ByteText.trimmed(bytes)
                if value.count > 1000 { return reject("a name is longer than 1000 octets") }
                if value.isEmpty { continue }
                if columns[index] == .name { name = value } else if columns[index] == .firstName { firstName = value } else { lastName = value }
            case .attribute:
                if attributes.count > 1 { attributes.append(UInt8(ascii: ",")) }
                attributes.append(contentsOf: attributeKeys[index])
                attributes.append(UInt8(ascii: ":"))
                JSONText.appendString(bytes, to: &attributes)
            case .ignored:
                break
            }
        }
        guard let email else { return reject("no email address") }
        attributes.append(UInt8(ascii: "}"))
        writer.writeField(record.line)
        writer.writeField(email)
        func write(_ value: ArraySlice<UInt8>?) {
            if let value { writer.writeField(value) } else { writer.writeNull() }
        }
        write(name)
        write(firstName)
        write(lastName)
        writer.writeField(attributes)
        try writer.endRow()
    }

    private mutating func readHeader(_ record: CSVRecord) throws {
        if let problem = record.problem { throw StoreError(.invalid, "the header row (line \(record.line)): \(problem)") }
        var cells: [String] = []
        for field in record.fields {
            guard let cell = String(validating: field, as: UTF8.self) else {
                throw StoreError(.invalid, "the header row is not valid UTF-8")
            }
            cells.append(cell)
        }
        let mapped = cells.map(ImportColumn.from(header:))
        guard let email = mapped.firstIndex(of: .email) else {
            throw StoreError(.invalid, "the header row has no email column (it has: \(cells.joined(separator: ", ")))")
        }
        var seen = Set<String>()
        for (cell, column) in zip(cells, mapped) where column != .ignored {
            let key: String
            switch column {
            case .attribute(let name): key = "attribute " + name
            default: key = "\(column)"
            }
            guard seen.insert(key).inserted else {
                throw StoreError(.invalid, "the header row names the column \(cell) twice")
            }
        }
        columns = mapped
        emailIndex = email
        attributeKeys = mapped.map { column in
            guard case .attribute(let key) = column else { return [] }
            var json: [UInt8] = []
            JSONText.appendString(Array(key.utf8), to: &json)
            return json
        }
    }
}

/// JSON string literals, by hand (the import writes one attributes object per row).
enum JSONText {
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `text` (valid UTF-8) as a JSON string literal.
    static func appendString<Text: Sequence>(_ text: Text, to out: inout [UInt8]) where Text.Element == UInt8 {
        out.append(0x22)
        for byte in text {
            switch byte {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30])
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(0x22)
    }
}
