import Foundation
import Hummingbird
import HummingbirdTesting
import Spool
import Testing

import Campaigns
import CampaignStore
@testable import Delivery

@testable import HTTPAPI

/// The admin API's door (`/v1/admin/…`): only an admin key opens it, a tenant's key is
/// told so (403), anything else is a 401, and an admin key opens nothing of a tenant's.
/// Its queue routes against a running queue manager are covered end to end
/// (`Integration.ConsolePostmasterEndToEnd`); here the node does not deliver, so they
/// answer 503, and the delivery log is read from a file written here.
@Suite struct AdminAPITests {
    static let tenantKey = "hk_admin-test-tenant-key"
    static let adminKey = "hk_admin-test-admin-key"

    static func withApp(log: [DeliveryLog.Entry] = [],
                        _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let dir = NSTemporaryDirectory() + "herald-admin-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try Spool(path: dir + "/spool")
        let logPath = dir + "/log/delivery.jsonl"
        let writer = DeliveryLog(path: logPath, maxBytes: 1 << 20)
        for entry in log { writer.write(entry) }
        let router = HTTPAPI.makeRouter(
            spool: spool, writer: SpoolWriter(spool: spool),
            verifier: StaticAPIKeys([(tenant: "tenant-a", sha256: APIKey.hash(tenantKey))]), hostname: "herald.test",
            admin: AdminV1(queue: nil, logPath: logPath),
            adminKeys: AdminKeys([(name: "postmaster", sha256: APIKey.hash(adminKey))]))
        try await Application(router: router).test(.router) { client in try await body(client) }
    }

    static func entry(_ i: Int, result: String) -> DeliveryLog.Entry {
        DeliveryLog.Entry(time: Date(timeIntervalSince1970: 1_800_000_000 + Double(i)), queueId: "Q\(i)",
                          recipient: "r\(i)@example.test", domain: "example.test", mxHost: nil, ip: nil, tls: false,
                          result: result, code: result == "deferred" ? 451 : 250, enhanced: nil,
                          reply: "reply \(i) <script>", attempt: 1, nextAttempt: nil, tenant: "t", campaign: nil,
                          durationMs: 3)
    }

    static func json(_ r: TestResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: r.body))) as? [String: Any] ?? [:]
    }

    @Test("no key and unknown keys get 401, a tenant's key 403, on every admin route; an admin key opens them")
    func door() async throws {
        try await Self.withApp { client in
            let routes: [(HTTPRequest.Method, String)] = [
                (.get, "/v1/admin/queue"), (.get, "/v1/admin/held"), (.get, "/v1/admin/log"),
                (.post, "/v1/admin/messages/00000000000000000000/hold"),
                (.post, "/v1/admin/messages/00000000000000000000/release"),
                (.delete, "/v1/admin/messages/00000000000000000000"),
            ]
            for (method, path) in routes {
                let none = try await client.executeRequest(uri: path, method: method, headers: [:], body: nil)
                #expect(none.status == .unauthorized, "\(method) \(path) without a key: \(none.status)")
                #expect(none.headers[.wwwAuthenticate] == "Bearer realm=\"herald-admin\"")
                let wrong = try await client.executeRequest(uri: path, method: method,
                                                            headers: [.authorization: "Bearer hk_nope"], body: nil)
                #expect(wrong.status == .unauthorized, "\(method) \(path) with a wrong key: \(wrong.status)")
                let tenant = try await client.executeRequest(uri: path, method: method,
                                                             headers: [.authorization: "Bearer \(Self.tenantKey)"], body: nil)
                #expect(tenant.status == .forbidden, "\(method) \(path) with a tenant key: \(tenant.status)")
                #expect((Self.json(tenant)["detail"] as? String)?.contains("admin key") == true)
                #expect(tenant.headers[.contentType] == "application/problem+json")
                // The same key in a cookie or the query opens nothing either.
                let cookie = try await client.executeRequest(uri: path + "?key=\(Self.adminKey)", method: method,
                                                             headers: [.cookie: "key=\(Self.adminKey)"], body: nil)
                #expect(cookie.status == .unauthorized, "\(method) \(path) with the key in a cookie: \(cookie.status)")
                let admin = try await client.executeRequest(uri: path, method: method,
                                                            headers: [.authorization: "Bearer \(Self.adminKey)"], body: nil)
                // This node has no queue manager: the queue routes say so; the log is read.
                let expected: HTTPResponse.Status = path.hasSuffix("/log") ? .ok : .serviceUnavailable
                #expect(admin.status == expected, "\(method) \(path) with the admin key: \(admin.status)")
            }
            // An admin key is no tenant's key (this router has no database: /v1/messages is its tenant route).
            let send = try await client.executeRequest(
                uri: "/v1/messages", method: .post,
                headers: [.authorization: "Bearer \(Self.adminKey)", .contentType: "application/json"],
                body: ByteBuffer(string: "{}"))
            #expect(send.status == .unauthorized, "POST /v1/messages with the admin key: \(send.status)")
        }
    }

    @Test("GET /v1/admin/log: the newest lines first, up to limit; limit checked")
    func log() async throws {
        let entries = (0..<5).map { Self.entry($0, result: $0 == 3 ? "deferred" : "delivered") }
        try await Self.withApp(log: entries) { client in
            let auth: HTTPFields = [.authorization: "Bearer \(Self.adminKey)"]
            let r = try await client.executeRequest(uri: "/v1/admin/log?limit=3", method: .get, headers: auth, body: nil)
            #expect(r.status == .ok)
            let data = Self.json(r)["data"] as? [[String: Any]] ?? []
            #expect(data.map { $0["queue_id"] as? String ?? "" } == ["Q4", "Q3", "Q2"], "\(data)")
            #expect(data[1]["result"] as? String == "deferred")
            #expect(data[1]["code"] as? Int == 451)
            #expect(data[1]["reply"] as? String == "reply 3 <script>")
            let all = try await client.executeRequest(uri: "/v1/admin/log", method: .get, headers: auth, body: nil)
            #expect((Self.json(all)["data"] as? [Any])?.count == 5)
            for bad in ["0", "1001", "x"] {
                let b = try await client.executeRequest(uri: "/v1/admin/log?limit=\(bad)", method: .get, headers: auth, body: nil)
                #expect(b.status == .badRequest, "limit=\(bad): \(b.status)")
            }
        }
    }

    @Test("a malformed queue id is a 400 naming it")
    func badID() async throws {
        try await Self.withApp { client in
            let r = try await client.executeRequest(uri: "/v1/admin/messages/not-an-id/release", method: .post,
                                                    headers: [.authorization: "Bearer \(Self.adminKey)"], body: nil)
            // Without a queue manager the 503 comes first only for a valid id.
            #expect(r.status == .badRequest, "\(r.status)")
            #expect((Self.json(r)["detail"] as? String)?.contains("not-an-id") == true)
        }
    }
}
