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
    /// table; then one `INSERT … ON CONFLICT` upserts the subscribers and another adds
    /// the memberships. Memory stays flat whatever the file's size (duplicates within
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
            let emit: (CSVRecord) throws -> Void = { record in
                if let row = try parser.take(record) { try writer.writeRow(row) }
            }
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
        try connection.execute("ANALYZE import_rows")

        // Duplicates within the file: every line but the first for each address.
        let duplicateCount = try PGText.require(
            try connection.query("SELECT count(*) - count(DISTINCT email) FROM import_rows").rows[0], 0, PGText.int)
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

        // Upsert the first line of each address; in address order, so that concurrent
        // imports into one tenant take row locks in the same order.
        let counts = try connection.query("""
            WITH src AS (
                SELECT DISTINCT ON (email) email, name, first_name, last_name, attributes
                FROM import_rows ORDER BY email, line
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
            SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
            """, [t]).rows[0]
        let added = try connection.execute("""
            INSERT INTO list_members (tenant_id, list_id, subscriber_id)
            SELECT $1, $2, s.id FROM (SELECT DISTINCT email FROM import_rows) i
            JOIN subscribers s ON s.tenant_id = $1 AND s.email = i.email
            ORDER BY s.id
            ON CONFLICT DO NOTHING
            """, [t, l])
        let created = try PGText.require(counts, 0, PGText.int)
        let updated = try PGText.require(counts, 1, PGText.int)
        let distinct = valid - duplicateCount
        return ImportReport(rows: parser.rows, created: created, updated: updated,
                            unchanged: distinct - created - updated, addedToList: added,
                            rejected: parser.rejected + duplicateCount, rejections: rejections,
                            rejectionsTruncated: parser.rejected + duplicateCount > rejections.count)
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

    /// The COPY row for `record`, nil for the header or a rejected record.
    mutating func take(_ record: CSVRecord) throws -> [String?]? {
        guard let columns else {
            try readHeader(record)
            return nil
        }
        rows += 1
        let rawEmail = record.fields.count > emailIndex ? record.fields[emailIndex] : []
        let shownEmail = String(decoding: rawEmail.prefix(254), as: UTF8.self)
        func reject(_ reason: String) -> [String?]? {
            rejected += 1
            if rejections.count < limit {
                rejections.append(ImportRejection(line: record.line, reason: reason,
                                                  email: rawEmail.isEmpty ? nil : shownEmail))
            }
            return nil
        }
        if let problem = record.problem { return reject(problem) }
        if record.fields.count > columns.count {
            return reject("\(record.fields.count) fields, but the header has \(columns.count)")
        }
        var email: String?
        var name: String?, firstName: String?, lastName: String?
        var attributes: [UInt8] = [UInt8(ascii: "{")]
        for (index, bytes) in record.fields.enumerated() where !bytes.isEmpty {
            guard ByteText.isValidUTF8(bytes) else { return reject("not valid UTF-8") }
            if bytes.contains(0) { return reject("contains a NUL byte") }
            switch columns[index] {
            case .email:
                switch SubscriberAddress.normalize(bytes: bytes) {
                case .success(let address): email = address
                case .failure(let error): return reject("invalid address: \(error.message)")
                }
            case .name, .firstName, .lastName:
                let value = ByteText.trimmed(bytes)
                if value.count > 1000 { return reject("a name is longer than 1000 octets") }
                if value.isEmpty { continue }
                let text = String(decoding: value, as: UTF8.self)
                if columns[index] == .name { name = text } else if columns[index] == .firstName { firstName = text } else { lastName = text }
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
        return [String(record.line), email, name, firstName, lastName, String(decoding: attributes, as: UTF8.self)]
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
    static func appendString(_ text: [UInt8], to out: inout [UInt8]) {
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
