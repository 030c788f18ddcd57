import Foundation
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Spool
import Testing

@testable import Campaigns
@testable import CampaignStore
@testable import HTTPAPI
@testable import Postgres

/// A router with the database-backed routes on a fresh database, two tenants (A and B)
/// with their API keys, and a throw-away spool.
struct HTTPListsFixture: Sendable {
    let db: PostgresClient
    let keyA: String
    let keyB: String
    let tenantA: TenantID
    let spool: Spool
    let makeRouter: @Sendable () -> Router<HeraldRequestContext>

    /// Seals the tenants' DKIM keys in the fixture's database.
    static let sealer = SecretSealer(secret: Array("http-lists-fixture-encryption-secret!".utf8))

    static func with(_ body: (HTTPListsFixture) async throws -> Void) async throws {
        try await StoreTestDB.with { db in
            let (a, issuedA) = try await StoreTestDB.tenant(db, "tenant-a")
            let (_, issuedB) = try await StoreTestDB.tenant(db, "tenant-b")
            let dir = NSTemporaryDirectory() + "herald-http-lists-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let spool = try Spool(path: dir)
            let signers = TenantDKIMSigners(store: DKIMKeyStore(db, sealer: sealer), base: [])
            let makeRouter: @Sendable () -> Router<HeraldRequestContext> = {
                HTTPAPI.makeRouter(
                    spool: spool, writer: SpoolWriter(spool: spool, tenantSigners: signers),
                    verifier: StaticAPIKeys([(tenant: "config-tenant", sha256: APIKey.hash(HTTPListsFixture.configKey))]),
                    hostname: "herald.test", stores: HTTPStores(db, sealer: sealer, tenantSigners: signers))
            }
            try await body(HTTPListsFixture(db: db, keyA: issuedA.key, keyB: issuedB.key, tenantA: a.id, spool: spool,
                                            makeRouter: makeRouter))
        }
    }

    /// A key from the config file: it authenticates, but has no database tenant.
    static let configKey = "hk_config-file-key"

    /// Runs `test` against the router in memory.
    func test(_ test: @escaping @Sendable (API) async throws -> Void) async throws {
        try await Application(router: makeRouter()).test(.router) { client in try await test(API(client: client)) }
    }

    /// Runs `test` against a real HTTP server on loopback (request bodies arrive in chunks).
    func testLive(_ test: @escaping @Sendable (API) async throws -> Void) async throws {
        let app = Application(router: makeRouter(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in try await test(API(client: client)) }
    }

    func count(_ sql: String) async throws -> Int {
        Int(try await db.query(sql)[0][0] ?? "") ?? -1
    }

    /// Row counts of the tables the routes write, to show that a rejected request left
    /// nothing behind.
    func counts() async throws -> [Int] {
        [try await count("SELECT count(*) FROM lists"), try await count("SELECT count(*) FROM subscribers"),
         try await count("SELECT count(*) FROM list_members"),
         try await count("SELECT count(*) FROM subscribers WHERE updated_at <> created_at")]
    }
}

/// One reply: status, parsed JSON body (object), and the raw response.
struct Reply: @unchecked Sendable {
    let status: HTTPResponse.Status
    let json: [String: Any]
    let response: TestResponse

    var id: Int { (json["id"] as? NSNumber)?.intValue ?? -1 }
    var detail: String { json["detail"] as? String ?? "" }
    var data: [[String: Any]] { json["data"] as? [[String: Any]] ?? [] }
    var next: Int? { (json["next"] as? NSNumber)?.intValue }
    var isProblem: Bool {
        response.headers[.contentType] == "application/problem+json" && json["status"] as? Int == Int(status.code)
            && !detail.isEmpty
    }
}

struct API: Sendable {
    let client: any TestClientProtocol

    func call(_ method: HTTPRequest.Method, _ uri: String, key: String?, json: Any? = nil, body: ByteBuffer? = nil,
              contentType: String? = nil) async throws -> Reply {
        var headers: HTTPFields = [:]
        if let key { headers[.authorization] = "Bearer \(key)" }
        var payload = body
        if let json {
            payload = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json))
            headers[.contentType] = "application/json"
        }
        if let contentType { headers[.contentType] = contentType }
        let response = try await client.executeRequest(uri: uri, method: method, headers: headers, body: payload)
        let object = response.body.readableBytes == 0
            ? [:] : (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
        return Reply(status: response.status, json: object, response: response)
    }
}

/// Bytes of a generated CSV (``GeneratedCSV``), in one buffer.
func generatedCSV(rows: Int, invalid: Set<Int> = [], duplicate: Set<Int> = []) async -> ByteBuffer {
    var buffer = ByteBuffer()
    for await chunk in GeneratedCSV(rows: rows, invalidLines: invalid, duplicateLines: duplicate) {
        buffer.writeBytes(chunk)
    }
    return buffer
}
