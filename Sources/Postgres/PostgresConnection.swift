import CLibPQ
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The rows of one statement, every value in PostgreSQL's text format (nil for NULL).
public struct PostgresResult: Sendable {
    /// Column names, in order.
    public var columns: [String]
    public var rows: [[String?]]
    /// What `PQcmdTuples` says: rows inserted, updated, deleted, copied or selected.
    public var affectedRows: Int

    public init(columns: [String] = [], rows: [[String?]] = [], affectedRows: Int = 0) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
    }
}

/// One libpq connection, used synchronously by one thread at a time.
///
/// Every call blocks the calling thread until PostgreSQL answers, so a
/// `PostgresConnection` lives on a thread of its own: ``PostgresClient`` gives each
/// pooled connection a dedicated worker thread and runs closures there
/// (``PostgresClient/withConnection(_:)``, ``PostgresClient/transaction(_:)``). It is
/// never used from a NIO event loop or the Swift concurrency pool.
///
/// Parameters are sent with `PQexecParams`, all as text (`$1`, `$2`, … with PostgreSQL
/// inferring each type from its use; cast where it cannot: `$1::bigint`), so values
/// never need quoting. Results come back in text format.
public final class PostgresConnection {
    /// The connection string or `postgres://` URL given to `PQconnectdb`.
    public let url: String
    private var handle: OpaquePointer?

    /// A connection to `url`, not yet opened: ``open()`` (or the pool) connects.
    public init(url: String) {
        self.url = url
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    /// The server process serving this connection (`pg_backend_pid()`), 0 when closed.
    public var backendPID: Int32 {
        guard let handle, PQstatus(handle) == CONNECTION_OK else { return 0 }
        return PQbackendPID(handle)
    }

    /// The `PGconn` for the pool's cancel requests.
    var rawHandle: OpaquePointer? { handle }

    /// True while libpq considers the connection usable.
    public var isOpen: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// Connects (again, when already connected once) and sets the session up.
    public func open() throws(PostgresError) {
        if let handle {
            PQreset(handle)
            guard PQstatus(handle) == CONNECTION_OK else {
                throw PostgresError(.connection, message: PostgresError.connectionMessage(handle))
            }
        } else {
            guard let connection = Self.connect(url) else {
                throw PostgresError(.connection, message: "libpq could not allocate a connection")
            }
            guard PQstatus(connection) == CONNECTION_OK else {
                let message = PostgresError.connectionMessage(connection)
                PQfinish(connection)
                throw PostgresError(.connection, message: message)
            }
            // libpq prints NOTICEs ("relation … already exists, skipping") to stderr by
            // default; a server has no use for them.
            PQsetNoticeProcessor(connection, { _, _ in }, nil)
            handle = connection
        }
        // Text values the store parses: timestamps in UTC, ISO format; UTF-8 strings.
        try executeScript("SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD'; SET client_encoding TO 'UTF8'")
    }

    /// `PQconnectdbParams` with Herald's defaults first and the URL (or conninfo
    /// string) expanded after them, so that anything the URL sets wins: a 10 s connect
    /// time-out (libpq's default is to wait as long as the OS does) and the
    /// application name `herald` (seen in `pg_stat_activity`).
    private static func connect(_ url: String) -> OpaquePointer? {
        let keywords = ["connect_timeout", "application_name", "dbname"]
        let values = ["10", "herald", url]
        let keywordCopies = keywords.map { strdup($0) } + [nil]
        let valueCopies = values.map { strdup($0) } + [nil]
        defer {
            for pointer in keywordCopies { free(pointer) }
            for pointer in valueCopies { free(pointer) }
        }
        let keywordPointers = keywordCopies.map { $0.map { UnsafePointer($0) } }
        let valuePointers = valueCopies.map { $0.map { UnsafePointer($0) } }
        return keywordPointers.withUnsafeBufferPointer { k in
            valuePointers.withUnsafeBufferPointer { v in PQconnectdbParams(k.baseAddress, v.baseAddress, 1) }
        }
    }

    /// Closes the connection (``open()`` connects again).
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// Makes the connection ready for a new piece of work: opens it if needed; notices
    /// that the server closed it while idle (`pg_terminate_backend`, a restart) and
    /// reconnects; rolls back a transaction an earlier user left open.
    public func prepareForUse() throws(PostgresError) {
        guard let handle else {
            try open()
            return
        }
        if PQstatus(handle) == CONNECTION_OK {
            // An idle connection has nothing to read unless the server spoke first: a
            // FATAL error before it closed the session, or the end of the stream.
            // libpq takes the FATAL message as a notice and sees the end of the stream
            // only on a later read, hence the loop.
            for _ in 0..<4 {
                var entry = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
                guard poll(&entry, 1, 0) > 0 else { break }
                guard PQconsumeInput(handle) == 1 else { break }
                while let notify = PQnotifies(handle) { PQfreemem(notify) }
            }
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            try open()
            return
        }
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE:
            return
        case PQTRANS_INTRANS, PQTRANS_INERROR:
            try execute("ROLLBACK")
        default:
            try open()
        }
    }

    private func connected() throws(PostgresError) -> OpaquePointer {
        guard let handle, PQstatus(handle) == CONNECTION_OK else {
            throw PostgresError(.connection, message: handle.map(PostgresError.connectionMessage) ?? "not connected")
        }
        return handle
    }

    // MARK: - Statements

    /// Runs one statement (`PQexecParams`) and returns all its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresResult {
        let handle = try connected()
        let result = Self.withParameters(parameters) { values in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return Self.read(result!)
        case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
            // A COPY needs copyIn(_:_:); end it so that the connection stays usable.
            if PQresultStatus(result) == PGRES_COPY_IN { _ = PQputCopyEnd(handle, "COPY needs copyIn") }
            drain(handle)
            throw PostgresError(.server, message: "a COPY statement must be run with copyIn(_:_:)")
        default:
            throw PostgresError.from(result: result, connection: handle)
        }
    }

    /// Runs one statement and returns how many rows it touched.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> Int {
        try query(sql, parameters).affectedRows
    }

    /// Runs one or more `;`-separated statements with the simple query protocol
    /// (`PQexec`: no parameters). Migrations and session settings use it; anything
    /// with values uses ``execute(_:_:)`` and parameters.
    public func executeScript(_ sql: String) throws(PostgresError) {
        let handle = try connected()
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return
        default:
            throw PostgresError.from(result: result, connection: handle)
        }
    }

    /// Runs a query in single-row mode: `body` gets each row as it arrives, so a result
    /// of any size streams through in constant memory. `body` returns false to stop
    /// early (the rest of the query is cancelled). Returns the number of rows delivered.
    @discardableResult
    public func forEachRow(_ sql: String, _ parameters: [String?] = [],
                           _ body: ([String?]) throws -> Bool) throws -> Int {
        let handle = try connected()
        let sent = Self.withParameters(parameters) { values in
            PQsendQueryParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        guard sent == 1 else { throw PostgresError(.connection, message: PostgresError.connectionMessage(handle)) }
        guard PQsetSingleRowMode(handle) == 1 else {
            drain(handle)
            throw PostgresError(.server, message: "single-row mode refused")
        }
        var delivered = 0
        var stopped = false
        var failure: Error?
        while let result = PQgetResult(handle) {
            defer { PQclear(result) }
            if stopped { continue }  // draining after a stop or an error
            switch PQresultStatus(result) {
            case PGRES_SINGLE_TUPLE:
                let row = Self.row(result, 0, Int(PQnfields(result)))
                do {
                    if try body(row) {
                        delivered += 1
                    } else {
                        delivered += 1
                        stopped = true
                        cancelRunningQuery(handle)
                    }
                } catch {
                    failure = error
                    stopped = true
                    cancelRunningQuery(handle)
                }
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK:
                break
            default:
                failure = PostgresError.from(result: result, connection: handle)
                stopped = true
            }
        }
        if let failure { throw failure }
        return delivered
    }

    /// Runs `COPY … FROM STDIN` (`sql`) and feeds it what `produce` writes. Returns the
    /// number of rows PostgreSQL copied. If `produce` throws, the COPY is aborted
    /// (nothing is copied) and the error is rethrown.
    @discardableResult
    public func copyIn(_ sql: String, _ produce: (PostgresCopyWriter) throws -> Void) throws -> Int {
        let handle = try connected()
        let start = PQexec(handle, sql)
        let status = PQresultStatus(start)
        if status != PGRES_COPY_IN {
            defer { PQclear(start) }
            if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK {
                throw PostgresError(.server, message: "copyIn needs a COPY … FROM STDIN statement")
            }
            throw PostgresError.from(result: start, connection: handle)
        }
        PQclear(start)
        let writer = PostgresCopyWriter(handle: handle)
        var producerError: Error?
        do {
            try produce(writer)
            try writer.flush()
        } catch {
            producerError = error
        }
        let ended: Int32
        if let producerError {
            ended = PQputCopyEnd(handle, "aborted by the client: \(producerError)")
        } else {
            ended = PQputCopyEnd(handle, nil)
        }
        var serverError: PostgresError?
        var copied = 0
        if ended != 1 {
            serverError = PostgresError(.connection, message: PostgresError.connectionMessage(handle))
        }
        var stuck = false
        while !stuck, let result = PQgetResult(handle) {
            switch PQresultStatus(result) {
            case PGRES_COMMAND_OK:
                copied = Self.affected(result)
            case PGRES_COPY_IN:
                // Only after a failed PQputCopyEnd: the connection cannot leave COPY.
                stuck = true
            default:
                if serverError == nil { serverError = PostgresError.from(result: result, connection: handle) }
            }
            PQclear(result)
        }
        if stuck { close() }
        if let producerError { throw producerError }
        if let serverError { throw serverError }
        return copied
    }

    /// Asks the server to cancel what this connection runs (from the connection's own
    /// thread, while consuming results).
    private func cancelRunningQuery(_ handle: OpaquePointer) {
        guard let cancel = PQgetCancel(handle) else { return }
        defer { PQfreeCancel(cancel) }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancel, &buffer, Int32(buffer.count))
    }

    /// Consumes every pending result.
    private func drain(_ handle: OpaquePointer) {
        while let result = PQgetResult(handle) { PQclear(result) }
    }

    // MARK: - Conversions

    private static func withParameters<R>(_ parameters: [String?],
                                          _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
        if parameters.isEmpty { return body(nil) }
        let copies: [UnsafeMutablePointer<CChar>?] = parameters.map { $0.map { strdup($0) } }
        defer { for pointer in copies { free(pointer) } }
        let values: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        return values.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    private static func read(_ result: OpaquePointer) -> PostgresResult {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        var columns: [String] = []
        columns.reserveCapacity(columnCount)
        for c in 0..<columnCount { columns.append(String(cString: PQfname(result, Int32(c)))) }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount { rows.append(row(result, r, columnCount)) }
        return PostgresResult(columns: columns, rows: rows, affectedRows: affected(result))
    }

    private static func row(_ result: OpaquePointer, _ r: Int, _ columnCount: Int) -> [String?] {
        var values: [String?] = []
        values.reserveCapacity(columnCount)
        let r32 = Int32(r)
        for c in 0..<Int32(columnCount) {
            if PQgetisnull(result, r32, c) == 1 {
                values.append(nil)
            } else {
                let length = Int(PQgetlength(result, r32, c))
                let pointer = UnsafeRawPointer(PQgetvalue(result, r32, c)!)
                values.append(String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self))
            }
        }
        return values
    }

    private static func affected(_ result: OpaquePointer) -> Int {
        guard let text = PQcmdTuples(result) else { return 0 }
        return Int(String(cString: text)) ?? 0
    }
}

/// What ``PostgresConnection/copyIn(_:_:)`` hands its producer: writes COPY data,
/// buffered into large `PQputCopyData` calls.
public final class PostgresCopyWriter {
    private let handle: OpaquePointer
    private var buffer: [UInt8] = []
    private static let flushSize = 256 * 1024

    init(handle: OpaquePointer) {
        self.handle = handle
        buffer.reserveCapacity(Self.flushSize + 4096)
    }

    /// Raw COPY data (it must be in the format the COPY statement names).
    public func write<Bytes: Sequence>(_ bytes: Bytes) throws where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.flushSize { try flush() }
    }

    /// One row in COPY's default text format: tab-separated, `\N` for NULL, backslash,
    /// tab, newline and carriage return escaped.
    public func writeRow(_ values: [String?]) throws {
        for value in values {
            if var value {
                value.withUTF8 { writeField($0) }
            } else {
                writeNull()
            }
        }
        try endRow()
    }

    /// Whether the next field is the first of its row (no tab before it).
    private var atRowStart = true

    /// The next field of the current row, in COPY's text format, from its bytes: for a
    /// producer that has the bytes already and would otherwise build a `String` per
    /// field. The bytes must not contain NUL (the text format cannot carry it); the
    /// row ends with ``endRow()``.
    public func writeField(_ bytes: UnsafeBufferPointer<UInt8>) {
        startField()
        Self.appendEscaped(bytes, to: &buffer)
    }

    /// The same from any bytes.
    public func writeField<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if bytes.withContiguousStorageIfAvailable({ writeField($0) }) == nil {
            Array(bytes).withUnsafeBufferPointer { writeField($0) }
        }
    }

    /// The next field, an integer in decimal.
    public func writeField(_ number: Int) {
        startField()
        buffer.append(contentsOf: String(number).utf8)  // a small string: no allocation
    }

    /// The next field, NULL (`\N`).
    public func writeNull() {
        startField()
        buffer.append(0x5C)
        buffer.append(UInt8(ascii: "N"))
    }

    /// Ends the current row; sends the buffer once it is large.
    public func endRow() throws {
        buffer.append(0x0A)
        atRowStart = true
        if buffer.count >= Self.flushSize { try flush() }
    }

    private func startField() {
        if atRowStart { atRowStart = false } else { buffer.append(0x09) }
    }

    /// Appends `bytes` with COPY's text escapes (backslash, tab, newline, carriage
    /// return), copying the runs between them whole.
    static func appendEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to buffer: inout [UInt8]) {
        var run = 0
        for index in 0..<bytes.count {
            let escape: UInt8
            switch bytes[index] {
            case 0x5C: escape = 0x5C
            case 0x09: escape = UInt8(ascii: "t")
            case 0x0A: escape = UInt8(ascii: "n")
            case 0x0D: escape = UInt8(ascii: "r")
            default: continue
            }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<index]))
            buffer.append(0x5C)
            buffer.append(escape)
            run = index + 1
        }
        buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...]))
    }

    /// Sends what is buffered.
    public func flush() throws(PostgresError) {
        guard !buffer.isEmpty else { return }
        let sent = buffer.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32($0.count)) }
        }
        guard sent == 1 else {
            throw PostgresError(.connection, message: PostgresError.connectionMessage(handle))
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
