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
@testable import Rendering

/// `GET` / `POST /u/{token}` on a real PostgreSQL: two tenants, subscribers A and B of
/// tenant 1 on a list whose name would be markup if it were not escaped.
struct UnsubscribeFixture: Sendable {
    static let key = Array("unsubscribe-test-key-0123456789ab".utf8)
    static let listName = "<script>alert('x')</script> & \"News\""

    let db: PostgresClient
    let tenant: TenantID
    let otherTenant: TenantID
    let list: Int64
    let a: Subscriber
    let b: Subscriber
    let campaign: Int64
    let spool: Spool

    static func with(_ body: (UnsubscribeFixture) async throws -> Void) async throws {
        try await StoreTestDB.with { db in
            let (t1, _) = try await StoreTestDB.tenant(db, "tenant-one")
            let (t2, _) = try await StoreTestDB.tenant(db, "tenant-two")
            let list = try await ListStore(db).createList(tenant: t1.id, name: listName)
            let subscribers = SubscriberStore(db)
            let a = try #require(try await subscribers.upsert(tenant: t1.id, listID: list.id,
                                                              SubscriberInput(email: "Alice@Example.com"))).subscriber
            let b = try #require(try await subscribers.upsert(tenant: t1.id, listID: list.id,
                                                              SubscriberInput(email: "bob@example.com"))).subscriber
            let campaign = try #require(Int64(try await db.query("""
                INSERT INTO campaigns (tenant_id, name, from_address, subject, text, list_ids)
                VALUES ($1, 'Spring', 'news@example.com', 'Hello', 'Hi', ARRAY[$2::bigint]) RETURNING id
                """, [t1.id.description, String(list.id)])[0][0] ?? ""))
            try await db.execute("INSERT INTO campaign_counters (tenant_id, campaign_id) VALUES ($1, $2)",
                                 [t1.id.description, String(campaign)])
            let dir = NSTemporaryDirectory() + "herald-unsubscribe-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try await body(UnsubscribeFixture(db: db, tenant: t1.id, otherTenant: t2.id, list: list.id, a: a, b: b,
                                              campaign: campaign, spool: try Spool(path: dir)))
        }
    }

    func token(_ subscriber: Subscriber, campaign: Int64? = nil, tenant: TenantID? = nil,
               key: [UInt8] = UnsubscribeFixture.key) -> String {
        UnsubscribeToken.make(subscriber: String(subscriber.id), list: String(list), campaign: campaign.map(String.init),
                              tenant: (tenant ?? self.tenant).description, key: key)
    }

    func router(key: [UInt8]? = UnsubscribeFixture.key, stores: Bool = true) -> Router<HeraldRequestContext> {
        HTTPAPI.makeRouter(spool: spool, writer: SpoolWriter(spool: spool), verifier: StaticAPIKeys([]),
                           hostname: "herald.test", stores: stores ? HTTPStores(db) : nil, unsubscribeKey: key)
    }

    func test(key: [UInt8]? = UnsubscribeFixture.key, stores: Bool = true,
              _ test: @escaping @Sendable (UnsubscribeClient) async throws -> Void) async throws {
        try await Application(router: router(key: key, stores: stores)).test(.router) { client in
            try await test(UnsubscribeClient(client: client))
        }
    }

    /// Everything an unsubscribe may change, to show that a rejected request changed nothing.
    func snapshot() async throws -> [[String?]] {
        try await db.query("SELECT 'subscriber', tenant_id::text, id::text, status, updated_at::text FROM subscribers")
            + db.query("SELECT 'suppression', tenant_id::text, email, reason, campaign_id::text FROM suppressions")
            + db.query("SELECT 'counter', tenant_id::text, campaign_id::text, unsubscribed::text, updated_at::text FROM campaign_counters")
            + db.query("SELECT 'member', tenant_id::text, list_id::text, subscriber_id::text, '' FROM list_members")
    }

    func status(_ subscriber: Subscriber) async throws -> String? {
        try await db.query("SELECT status FROM subscribers WHERE id = $1", [String(subscriber.id)]).first?[0]
    }

    func suppressions() async throws -> [[String?]] {
        try await db.query("SELECT tenant_id::text, email, reason, campaign_id::text FROM suppressions ORDER BY email")
    }

    func unsubscribedCounter() async throws -> Int {
        Int(try await db.query("SELECT unsubscribed FROM campaign_counters WHERE campaign_id = $1",
                               [String(campaign)])[0][0] ?? "") ?? -1
    }
}

struct UnsubscribeReply: Sendable {
    let status: HTTPResponse.Status
    let contentType: String?
    let text: String
    let headers: HTTPFields
}

struct UnsubscribeClient: Sendable {
    let client: any TestClientProtocol

    func get(_ token: String) async throws -> UnsubscribeReply {
        try await call(.get, "/u/" + token)
    }

    /// RFC 8058 §3.1: `List-Unsubscribe=One-Click`, form-encoded.
    func oneClick(_ token: String) async throws -> UnsubscribeReply {
        try await call(.post, "/u/" + token, body: "List-Unsubscribe=One-Click",
                       contentType: "application/x-www-form-urlencoded")
    }

    func call(_ method: HTTPRequest.Method, _ uri: String, body: String? = nil,
              contentType: String? = nil) async throws -> UnsubscribeReply {
        var headers: HTTPFields = [:]
        if let contentType { headers[.contentType] = contentType }
        let response = try await client.executeRequest(uri: uri, method: method, headers: headers,
                                                       body: body.map { ByteBuffer(string: $0) })
        return UnsubscribeReply(status: response.status, contentType: response.headers[.contentType],
                                text: String(buffer: response.body), headers: response.headers)
    }
}

/// Tokens that must not verify: every character of `token` changed in turn (sampled),
/// cut short, extended, and the payloads of other tokens with this one's MAC.
func unsubscribeForgeries(of token: String, others: [String]) -> [String] {
    let chars = Array(token)
    var out: [String] = []
    let positions = Set(stride(from: 0, to: chars.count, by: 7)).union([0, chars.count - 1])
    for i in positions.sorted() {
        var edited = chars
        edited[i] = chars[i] == "A" ? "B" : "A"
        out.append(String(edited))
    }
    out.append(String(chars.dropLast()))
    out.append(token + "A")
    out.append(token.replacingOccurrences(of: ".", with: ""))
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    for other in others {
        let otherParts = other.split(separator: ".", omittingEmptySubsequences: false)
        out.append(otherParts[0] + "." + parts[1])   // another subscriber's payload, this MAC
        out.append(parts[0] + "." + otherParts[1])   // this payload, another's MAC
    }
    out += ["x", "garbage.garbage", "%3Cscript%3E", String(repeating: "A", count: 3000) + "." + "B"]
    return out
}

@Suite("Unsubscribe (GET/POST /u/{token})", .serialized, .enabled(if: PostgresServer.isAvailable))
struct UnsubscribeTests {
    @Test func getShowsAnEscapedConfirmationFormAndChangesNothing() async throws {
        try await UnsubscribeFixture.with { f in
            let before = try await f.snapshot()
            try await f.test { u in
                let page = try await u.get(f.token(f.a, campaign: f.campaign))
                #expect(page.status == .ok)
                #expect(page.contentType == "text/html; charset=utf-8")
                #expect(page.text.contains("<form method=\"post\">"))
                #expect(page.text.contains("type=\"submit\""))
                #expect(page.text.contains("alice@example.com"))
                // The list name is shown, escaped: no markup from data reaches the page.
                #expect(page.text.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;News&quot;"))
                #expect(!page.text.contains("<script"))
                #expect(!page.text.contains("alert('x')"))
                // Nothing that loads or tracks: no scripts, images, links or external resources.
                for marker in ["<img", "<script", "<link", "<iframe", "src=", "href=", "http://", "https://"] {
                    #expect(!page.text.lowercased().contains(marker), "\(marker)")
                }
                #expect(page.headers[.cacheControl] == "no-store")
                #expect(page.headers[.init("Referrer-Policy")!] == "no-referrer")
                #expect(page.headers[.init("Content-Security-Policy")!]?.contains("default-src 'none'") == true)
            }
            #expect(try await f.snapshot() == before)
            #expect(try await f.status(f.a) == "active")
        }
    }

    @Test func oneClickUnsubscribesThatSubscriberOnlyAndSuppresses() async throws {
        try await UnsubscribeFixture.with { f in
            try await f.test { u in
                let reply = try await u.oneClick(f.token(f.a, campaign: f.campaign))
                #expect(reply.status == .ok)
                #expect(reply.contentType == "text/html; charset=utf-8")
                #expect(reply.text.contains("unsubscribed"))
            }
            #expect(try await f.status(f.a) == "unsubscribed")
            #expect(try await f.status(f.b) == "active")
            #expect(try await f.suppressions()
                == [[f.tenant.description, "alice@example.com", "unsubscribed", String(f.campaign)]])
            #expect(try await f.unsubscribedCounter() == 1)
            let suppression = try #require(try await SuppressionStore(f.db).suppression(tenant: f.tenant,
                                                                                         email: "ALICE@example.com"))
            #expect(suppression.reason == .unsubscribed && suppression.campaignID == f.campaign)
            #expect(try await SuppressionStore(f.db).suppression(tenant: f.otherTenant, email: "alice@example.com") == nil)
            #expect(try await SuppressionStore(f.db).suppression(tenant: f.tenant, email: "bob@example.com") == nil)
        }
    }

    @Test func repeatedPostsAreIdempotent() async throws {
        try await UnsubscribeFixture.with { f in
            let token = f.token(f.a, campaign: f.campaign)
            try await f.test { u in
                let first = try await u.oneClick(token)
                #expect(first.status == .ok)
            }
            let after = try await f.snapshot()
            try await f.test { u in
                #expect(try await u.oneClick(token).status == .ok)
                // The page's own form (its button sends the same field), and an empty body.
                #expect(try await u.call(.post, "/u/" + token).status == .ok)
                #expect(try await u.call(.post, "/u/" + token, body: "", contentType: "application/x-www-form-urlencoded")
                    .status == .ok)
                // After unsubscribing, the page says so and offers no form.
                let page = try await u.get(token)
                #expect(page.status == .ok && !page.text.contains("<form"))
            }
            #expect(try await f.snapshot() == after)
            #expect(try await f.unsubscribedCounter() == 1)
            #expect(try await f.suppressions().count == 1)
        }
    }

    @Test func tokenWithoutCampaignAndConcurrentPosts() async throws {
        try await UnsubscribeFixture.with { f in
            let token = f.token(f.b)
            try await f.test { u in
                try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for _ in 0..<8 { group.addTask { try await u.oneClick(token).status } }
                    for try await status in group { #expect(status == .ok) }
                }
            }
            #expect(try await f.status(f.b) == "unsubscribed")
            #expect(try await f.status(f.a) == "active")
            #expect(try await f.suppressions() == [[f.tenant.description, "bob@example.com", "unsubscribed", nil]])
            #expect(try await f.unsubscribedCounter() == 0)
        }
    }

    @Test func forgedAndEditedTokensAre404AndChangeNothing() async throws {
        try await UnsubscribeFixture.with { f in
            let genuine = f.token(f.a, campaign: f.campaign)
            var forgeries = unsubscribeForgeries(of: genuine, others: [f.token(f.b, campaign: f.campaign), f.token(f.b)])
            // Signed with another key; and a genuine token of another tenant, whose
            // signature is fine but whose fields name nothing there (below).
            forgeries.append(f.token(f.a, campaign: f.campaign, key: Array("another-key-another-key-0000".utf8)))
            // Valid signature, but ids that cannot be subscribers.
            forgeries.append(UnsubscribeToken.make(subscriber: "alice", list: "1", campaign: nil,
                                                tenant: f.tenant.description, key: UnsubscribeFixture.key))
            forgeries.append(UnsubscribeToken.make(subscriber: String(f.a.id), list: "1", campaign: nil,
                                                tenant: "-1", key: UnsubscribeFixture.key))
            let forged = forgeries
            #expect(forged.count > 20)
            let before = try await f.snapshot()
            try await f.test { u in
                for token in forged where token != genuine {
                    let path = token.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? token
                    let page = try await u.get(path)
                    #expect(page.status == .notFound, "GET \(token)")
                    #expect(!page.text.contains("<form"))
                    let post = try await u.oneClick(path)
                    #expect(post.status == .notFound, "POST \(token)")
                    #expect(post.contentType == "text/html; charset=utf-8")
                }
            }
            #expect(try await f.snapshot() == before)
        }
    }

    @Test func tokensAreScopedToTheirTenant() async throws {
        try await UnsubscribeFixture.with { f in
            // Genuinely signed, but for the other tenant: A's id means nothing there.
            let other = f.token(f.a, campaign: f.campaign, tenant: f.otherTenant)
            let before = try await f.snapshot()
            try await f.test { u in
                let page = try await u.get(other)
                #expect(page.status == .ok && !page.text.contains("<form") && !page.text.contains("alice"))
                let post = try await u.oneClick(other)
                #expect(post.status == .ok && !post.text.contains("alice"))
            }
            #expect(try await f.snapshot() == before)
        }
    }

    @Test func deletedSubscriberAndRoutesWithoutKeyOrDatabase() async throws {
        try await UnsubscribeFixture.with { f in
            let token = f.token(f.a)
            try await SubscriberStore(f.db).delete(tenant: f.tenant, id: f.a.id)
            try await f.test { u in
                let page = try await u.get(token), post = try await u.oneClick(token)
                #expect(page.status == .ok && post.status == .ok)
            }
            #expect(try await f.suppressions().isEmpty)
            // Without a key (or without a database) the routes do not exist.
            try await f.test(key: nil) { u in
                let page = try await u.get(f.token(f.b)), post = try await u.oneClick(f.token(f.b))
                #expect(page.status == .notFound && post.status == .notFound)
            }
            try await f.test(stores: false) { u in
                let post = try await u.oneClick(f.token(f.b))
                #expect(post.status == .notFound)
            }
            #expect(try await f.status(f.b) == "active")
        }
    }

    @Test func oversizedBodyIsRefused() async throws {
        try await UnsubscribeFixture.with { f in
            try await f.test { u in
                let big = String(repeating: "x", count: 20_000)
                let reply = try await u.call(.post, "/u/" + f.token(f.a), body: big, contentType: "text/plain")
                #expect(reply.status == .contentTooLarge)
            }
            #expect(try await f.status(f.a) == "active")
        }
    }
}
