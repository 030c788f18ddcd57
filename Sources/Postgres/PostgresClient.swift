import CLibPQ
import Foundation
import Logging
import NIOCore

/// A small pool of libpq connections behind an async API.
///
/// libpq's calls block, so each pooled connection belongs to one dedicated thread
/// (never a NIO event loop, never the Swift concurrency pool). Work is a closure queued
/// to whichever connection thread is free first; the awaiting task is suspended, not
/// blocked, until the thread resumes it. Connections are opened on first use, checked
/// before every piece of work (a connection the server closed while idle, e.g. by
/// `pg_terminate_backend` or a restart, is reconnected), and closed by ``close()``.
///
/// ```swift
/// let db = PostgresClient(url: "postgres://herald@127.0.0.1:5432/herald")
/// let rows = try await db.query("SELECT id, name FROM lists WHERE tenant_id = $1", ["7"])
/// let id = try await db.transaction { conn in
///     try conn.query("INSERT INTO lists (tenant_id, name) VALUES ($1, $2) RETURNING id", ["7", "news"]).rows[0][0]!
/// }
/// for try await row in db.stream("SELECT email FROM subscribers WHERE tenant_id = $1", ["7"]) { … }
/// ```
///
/// Cancelling the awaiting task cancels the work: before it starts it is skipped; while
/// it runs, the server is asked to cancel the statement (`PQcancel`), and a transaction
/// rolls back.
public final class PostgresClient: Sendable {
    /// The connection string or URL (`postgres://user:password@host:port/database?…`).
    public let url: String
    /// How many connections (and threads).
    public let size: Int
    private let pool: Pool

    public init(url: String, size: Int = 4, logger: Logger = Logger(label: "herald.postgres")) {
        self.url = url
        self.size = max(1, size)
        self.pool = Pool(url: url, size: max(1, size), logger: logger)
    }

    deinit {
        pool.shutdown(waiter: nil)
    }

    /// Lets queued work finish, then closes every connection and ends the threads.
    /// Work submitted afterwards fails with a `.closed` error.
    public func close() async {
        await withCheckedContinuation { continuation in pool.shutdown(waiter: continuation) }
    }

    // MARK: - Running work on a connection thread

    /// Runs `body` on a free connection's thread and returns what it returns.
    /// `body` may run several statements; it must not keep the connection.
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        let job = Job()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                job.work = { connection in
                    do {
                        continuation.resume(returning: try body(connection))
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                job.fail = { error in continuation.resume(throwing: error) }
                pool.submit(job)
            }
        } onCancel: {
            job.cancel()
        }
    }

    /// Runs `body` inside `BEGIN` … `COMMIT` on one connection, on that connection's
    /// thread; rolls back and rethrows when `body` (or the commit) throws.
    public func transaction<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await withConnection { connection in try connection.inTransaction { try body(connection) } }
    }

    /// Runs one statement and returns its rows, every value as text (nil for NULL).
    public func query(_ sql: String, _ parameters: [String?] = []) async throws -> [[String?]] {
        try await withConnection { connection in try connection.query(sql, parameters).rows }
    }

    /// Runs one statement and returns its whole result (columns, rows, affected count).
    public func result(_ sql: String, _ parameters: [String?] = []) async throws -> PostgresResult {
        try await withConnection { connection in try connection.query(sql, parameters) }
    }

    /// Runs one statement and returns how many rows it touched.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = []) async throws -> Int {
        try await withConnection { connection in try connection.query(sql, parameters).affectedRows }
    }

    /// Streams the rows of a query in single-row mode: the connection thread fetches
    /// rows as the consumer takes them, holding at most about `buffer` rows in memory.
    /// The query starts when iteration starts; it holds one connection until the
    /// sequence ends or the iterator is dropped (which cancels the query).
    public func stream(_ sql: String, _ parameters: [String?] = [], buffer: Int = 2048) -> PostgresRowSequence {
        PostgresRowSequence(client: self, sql: sql, parameters: parameters, buffer: buffer)
    }

    /// Runs `body` on a connection thread while this task feeds it `chunks` (an HTTP
    /// upload, a file): `body` calls the function it is given to take the next chunk
    /// (blocking its thread until one arrives; nil at the end). At most `buffer` chunks
    /// wait in memory. With `transaction`, `body` runs inside BEGIN … COMMIT.
    public func withConnection<Chunks: AsyncSequence, T: Sendable>(
        feeding chunks: Chunks, buffer: Int = 8, transaction: Bool = false,
        _ body: @escaping @Sendable (PostgresConnection, () throws -> Chunks.Element?) throws -> T
    ) async throws -> T where Chunks.Element: Sendable {
        let inbox = ThreadInbox<Chunks.Element>(capacity: buffer)
        async let outcome: T = {
            do {
                return try await self.withConnection { connection in
                    defer { inbox.consumerStopped() }
                    if transaction {
                        return try connection.inTransaction { try body(connection, inbox.receive) }
                    }
                    return try body(connection, inbox.receive)
                }
            } catch {
                inbox.consumerStopped()  // the body may never have run
                throw error
            }
        }()
        do {
            for try await chunk in chunks {
                try await inbox.send(chunk)
            }
            inbox.finish()
        } catch {
            // The connection side stopped (its error is the one to report), or the
            // source failed: then the body's next receive throws this error.
            inbox.finish(error)
        }
        return try await outcome
    }

    /// `COPY … FROM STDIN` fed from an async sequence of byte chunks (in the format the
    /// statement names). Returns the number of rows copied.
    @discardableResult
    public func copyIn<Chunks: AsyncSequence>(_ sql: String, from chunks: Chunks) async throws -> Int
    where Chunks.Element: Sequence & Sendable, Chunks.Element.Element == UInt8 {
        try await withConnection(feeding: chunks) { connection, next in
            try connection.copyIn(sql) { writer in
                while let chunk = try next() { try writer.write(chunk) }
            }
        }
    }
}

extension PostgresConnection {
    /// `BEGIN`, `body`, `COMMIT`; `ROLLBACK` when `body` or the commit throws.
    public func inTransaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            if isOpen { _ = try? execute("ROLLBACK") }
            throw error
        }
    }
}

// MARK: - The pool

/// One queued piece of work and its cancellation state.
final class Job: @unchecked Sendable {
    /// Set before the job is queued, read by one worker thread.
    var work: ((PostgresConnection) -> Void)?
    var fail: ((Error) -> Void)?

    private let lock = NSLock()
    private var cancelled = false
    private var canceller: OpaquePointer?  // PGcancel* while running

    /// Marks the job cancelled; asks the server to cancel it if it is running.
    func cancel() {
        let running = lock.withLock { () -> Bool in
            cancelled = true
            return canceller != nil
        }
        guard running else { return }
        // PQcancel opens a connection to the server: not on the caller's (maybe
        // cooperative) thread. It runs under the job's lock, so the worker cannot end
        // the job and start the next one while the request is on its way; a request
        // that still arrives late finds the backend idle or in the next statement
        // (PostgreSQL's cancel protocol cannot name a statement).
        Thread.detachNewThread { [self] in
            lock.withLock {
                guard let target = canceller else { return }
                var buffer = [CChar](repeating: 0, count: 256)
                _ = PQcancel(target, &buffer, Int32(buffer.count))
            }
        }
    }

    /// Called by the worker: false if the job was cancelled before it started.
    func begin(_ connection: OpaquePointer?) -> Bool {
        lock.withLock {
            if cancelled { return false }
            if let connection { canceller = PQgetCancel(connection) }
            return true
        }
    }

    func end() {
        lock.withLock {
            if let target = canceller { PQfreeCancel(target) }
            canceller = nil
        }
    }
}

/// The queue and the worker threads.
final class Pool: @unchecked Sendable {
    private let url: String
    private let logger: Logger
    private let condition = NSCondition()
    private var jobs = CircularBuffer<Job>()
    private var closing = false
    private var liveWorkers: Int
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []

    init(url: String, size: Int, logger: Logger) {
        self.url = url
        self.logger = logger
        self.liveWorkers = size
        for index in 0..<size {
            let thread = Thread { [self] in
                // Named from inside: on Linux, naming a Thread before start() has no effect.
                Thread.current.name = "herald-pg-\(index)"
                self.run(index)
            }
            thread.start()
        }
    }

    func submit(_ job: Job) {
        condition.lock()
        if closing {
            condition.unlock()
            job.fail?(PostgresError(.closed, message: "the PostgreSQL client is closed"))
            return
        }
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    func shutdown(waiter: CheckedContinuation<Void, Never>?) {
        condition.lock()
        closing = true
        if let waiter {
            if liveWorkers == 0 {
                condition.unlock()
                waiter.resume()
                return
            }
            closeWaiters.append(waiter)
        }
        condition.broadcast()
        condition.unlock()
    }

    private func run(_ index: Int) {
        let connection = PostgresConnection(url: url)
        while true {
            condition.lock()
            while jobs.isEmpty && !closing { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                break
            }
            let job = jobs.removeFirst()
            condition.unlock()
            execute(job, on: connection)
        }
        connection.close()
        condition.lock()
        liveWorkers -= 1
        let waiters = liveWorkers == 0 ? closeWaiters : []
        if liveWorkers == 0 { closeWaiters = [] }
        condition.unlock()
        for waiter in waiters { waiter.resume() }
    }

    private func execute(_ job: Job, on connection: PostgresConnection) {
        let wasOpen = connection.backendPID
        do {
            try connection.prepareForUse()
        } catch {
            logger.warning("PostgreSQL connection failed", metadata: ["error": "\(error)"])
            if job.begin(nil) {
                job.end()
                job.fail?(error)
            } else {
                job.fail?(CancellationError())
            }
            return
        }
        if wasOpen != 0 && wasOpen != connection.backendPID {
            logger.info("PostgreSQL connection re-established",
                        metadata: ["old_backend": "\(wasOpen)", "backend": "\(connection.backendPID)"])
        }
        guard job.begin(connection.rawHandle) else {
            job.fail?(CancellationError())
            return
        }
        job.work?(connection)
        job.end()
    }
}

/// An async sequence of rows streamed from one query in single-row mode
/// (``PostgresClient/stream(_:_:buffer:)``).
public struct PostgresRowSequence: AsyncSequence, Sendable {
    public typealias Element = [String?]
    let client: PostgresClient
    let sql: String
    let parameters: [String?]
    let buffer: Int

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(feed: Feed(client: client, sql: sql, parameters: parameters, buffer: buffer))
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let feed: Feed
        var batch: [[String?]] = []
        var index = 0

        public mutating func next() async throws -> [String?]? {
            if index < batch.count {
                defer { index += 1 }
                return batch[index]
            }
            guard let next = try await feed.nextBatch() else { return nil }
            batch = next
            index = 1
            return next.first
        }
    }

    /// Starts the query on first demand; cancels it when dropped before the end.
    final class Feed: @unchecked Sendable {
        let client: PostgresClient
        let sql: String
        let parameters: [String?]
        let outbox: ThreadOutbox<[String?]>
        private let lock = NSLock()
        private var started = false

        init(client: PostgresClient, sql: String, parameters: [String?], buffer: Int) {
            self.client = client
            self.sql = sql
            self.parameters = parameters
            self.outbox = ThreadOutbox(capacity: buffer)
        }

        deinit {
            outbox.cancel()
        }

        func nextBatch() async throws -> [[String?]]? {
            let start = lock.withLock { () -> Bool in
                defer { started = true }
                return !started
            }
            if start {
                let outbox = self.outbox, sql = self.sql, parameters = self.parameters
                let batchSize = 256
                // Detached from the iterating task's lifetime on purpose: the outbox
                // connects the two, and dropping the iterator cancels the query.
                Task.detached { [client] in
                    do {
                        _ = try await client.withConnection { connection in
                            var batch: [[String?]] = []
                            batch.reserveCapacity(batchSize)
                            var open = true
                            try connection.forEachRow(sql, parameters) { row in
                                batch.append(row)
                                if batch.count >= batchSize {
                                    open = outbox.send(batch)
                                    batch.removeAll(keepingCapacity: true)
                                }
                                return open
                            }
                            if open && !batch.isEmpty { _ = outbox.send(batch) }
                        }
                        outbox.finish()
                    } catch {
                        outbox.finish(error)
                    }
                }
            }
            while true {
                guard let batch = try await outbox.next() else { return nil }
                if !batch.isEmpty { return batch }
            }
        }
    }
}
