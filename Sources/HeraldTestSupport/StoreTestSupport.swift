import CampaignStore
import Foundation
import Postgres

/// Databases for the store tests: one private PostgreSQL per test process
/// (``PostgresServer/shared()``), a fresh database per test.
public enum StoreTestDB {
    private actor Admin {
        var client: PostgresClient?
        var counter = 0

        func createDatabase(on server: PostgresServer) async throws -> String {
            if client == nil { client = PostgresClient(url: server.url, size: 2) }
            counter += 1
            let name = "store_\(counter)_\(UUID().uuidString.prefix(8).lowercased())"
            try await client!.execute("CREATE DATABASE \(name)")
            return server.url(database: name)
        }
    }

    private static let admin = Admin()

    /// The URL of a new, empty database.
    public static func freshURL() async throws -> String {
        let server = try await PostgresServer.shared()
        return try await admin.createDatabase(on: server)
    }

    /// Runs `body` with a client on a fresh database (migrated unless told otherwise),
    /// closing the client afterwards.
    public static func with<T>(size: Int = 4, migrated: Bool = true,
                        _ body: (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(url: try await freshURL(), size: size)
        do {
            if migrated { try await Migrator.migrate(client) }
            let value = try await body(client)
            await client.close()
            return value
        } catch {
            await client.close()
            throw error
        }
    }

    /// A tenant of its own (and its API key).
    public static func tenant(_ db: PostgresClient, _ name: String = "acme") async throws -> (Tenant, IssuedAPIKey) {
        try await TenantStore(db).createTenant(name: name)
    }
}

/// Bytes handed out in chunks of `size`, as an upload would arrive.
public struct StoreChunks: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let bytes: [UInt8]
    let size: Int

    public init(_ text: String, size: Int = 7) {
        self.bytes = Array(text.utf8)
        self.size = size
    }

    public init(bytes: [UInt8], size: Int) {
        self.bytes = bytes
        self.size = size
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let bytes: [UInt8]
        let size: Int
        var offset = 0
        public mutating func next() async -> [UInt8]? {
            guard offset < bytes.count else { return nil }
            let end = Swift.min(bytes.count, offset + size)
            defer { offset = end }
            return Array(bytes[offset..<end])
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(bytes: bytes, size: size) }
}

/// A CSV file generated on the fly, `rows` data lines in ~64 KiB chunks, never held in
/// memory as a whole. Line `n` (data row `n - 1`) holds `user<n>@example.com`, except
/// every line in `invalidLines` (an address without a domain) and every line in
/// `duplicateLines` (the address of line 2 again).
public struct GeneratedCSV: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public let rows: Int
    public let invalidLines: Set<Int>
    public let duplicateLines: Set<Int>

    public init(rows: Int, invalidLines: Set<Int>, duplicateLines: Set<Int>) {
        self.rows = rows
        self.invalidLines = invalidLines
        self.duplicateLines = duplicateLines
    }

    public static let header = "email,first_name,last_name,plan,city\n"

    public static func line(_ n: Int, invalid: Bool, duplicate: Bool) -> String {
        let email = invalid ? "user\(n)-at-nowhere" : duplicate ? "user2@example.com" : "User\(n)@Example.com"
        return "\(email),First\(n),\"Last, \(n)\",\(n % 3 == 0 ? "pro" : "free"),City \(n % 97)\n"
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let source: GeneratedCSV
        var nextLine = 1  // physical line numbers; 1 is the header
        public mutating func next() async -> [UInt8]? {
            let last = source.rows + 1
            guard nextLine <= last else { return nil }
            var chunk: [UInt8] = []
            chunk.reserveCapacity(66_000)
            while nextLine <= last && chunk.count < 65_536 {
                let text = nextLine == 1 ? GeneratedCSV.header
                    : GeneratedCSV.line(nextLine, invalid: source.invalidLines.contains(nextLine),
                                        duplicate: source.duplicateLines.contains(nextLine))
                chunk.append(contentsOf: text.utf8)
                nextLine += 1
            }
            return chunk
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: self) }
}
