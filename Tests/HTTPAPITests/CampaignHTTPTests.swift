import Foundation
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Spool
import Testing

@testable import Campaigns
@testable import CampaignStore
@testable import HTTPAPI

/// The campaign routes on a real PostgreSQL, with an expander behind `send`.
@Suite("HTTP campaigns", .serialized, .enabled(if: PostgresServer.isAvailable))
struct CampaignHTTPTests {
    /// Tenants A and B with keys, A's list of `count` subscribers (``CampaignFixture``).
    static func with(count: Int = 50,
                     _ body: @escaping @Sendable (CampaignFixture, CampaignExpander, API, String, String) async throws -> Void)
        async throws
    {
        try await CampaignFixture.with(count: count) { f in
            let keyA = try #require(try await TenantStore(f.db).addKey(tenantName: "tenant-a")).key
            let (_, issuedB) = try await StoreTestDB.tenant(f.db, "tenant-b")
            let expander = f.expander()
            let router = HTTPAPI.makeRouter(
                spool: f.spool, writer: SpoolWriter(spool: f.spool),
                verifier: StaticAPIKeys([]), hostname: "herald.test",
                stores: HTTPStores(f.db, expander: expander,
                                   control: CampaignControl(db: f.db, mail: SpoolHeldCampaigns(spool: f.spool))))
            try await Application(router: router).test(.router) { client in
                try await body(f, expander, API(client: client), keyA, issuedB.key)
            }
        }
    }

    static func campaignBody(_ f: CampaignFixture, html: String = "<p>Hello {{first_name}}</p>") -> [String: Any] {
        ["name": "Launch", "from": "news@example.org", "subject": "Hi {{first_name}}", "html": html,
         "text": "Hello {{first_name}}", "list_ids": f.lists.map { Int($0) }]
    }

    @Test func createValidateGetListPatch() async throws {
        try await Self.with { f, _, api, a, _ in
            let created = try await api.call(.post, "/v1/campaigns", key: a, json: Self.campaignBody(f))
            #expect(created.status == .created)
            #expect(created.json["status"] as? String == "draft")
            #expect(created.json["list_ids"] as? [Int] == f.lists.map { Int($0) })
            #expect(created.response.headers[.location] == "/v1/campaigns/\(created.id)")

            // Unknown variable: 422 naming field, line and variable; nothing stored.
            let bad = try await api.call(.post, "/v1/campaigns", key: a,
                                         json: Self.campaignBody(f, html: "<p>Hi</p>\n<p>{{frist_name}}</p>"))
            #expect(bad.status == .unprocessableContent && bad.isProblem)
            let errors = bad.json["errors"] as? [String] ?? []
            #expect(errors.contains { $0.contains("frist_name") && $0.contains("html") && $0.contains("line 2") },
                    "\(errors)")
            let missing = try await api.call(.post, "/v1/campaigns", key: a, json: ["name": "x", "from": "a@b.c"])
            #expect(missing.status == .unprocessableContent && missing.detail.contains("subject"))
            var badFrom = Self.campaignBody(f)
            badFrom["from"] = "not an address"
            #expect(try await api.call(.post, "/v1/campaigns", key: a, json: badFrom).status == .unprocessableContent)
            var badList = Self.campaignBody(f)
            badList["list_ids"] = [999_999]
            let noList = try await api.call(.post, "/v1/campaigns", key: a, json: badList)
            #expect(noList.status == .unprocessableContent && noList.detail.contains("999999"))
            #expect(try await f.int("SELECT count(*) FROM campaigns") == 1)

            let got = try await api.call(.get, "/v1/campaigns/\(created.id)", key: a)
            #expect(got.status == .ok && got.json["subject"] as? String == "Hi {{first_name}}")
            let patched = try await api.call(.patch, "/v1/campaigns/\(created.id)", key: a,
                                             json: ["subject": "Hello {{name}}", "reply_to": "help@example.org"])
            #expect(patched.status == .ok && patched.json["subject"] as? String == "Hello {{name}}")
            #expect(patched.json["reply_to"] as? String == "help@example.org")
            #expect(patched.json["name"] as? String == "Launch")
            let badPatch = try await api.call(.patch, "/v1/campaigns/\(created.id)", key: a,
                                              json: ["text": "{{#first_name}}"])
            #expect(badPatch.status == .unprocessableContent && badPatch.isProblem)

            for n in 2...5 {
                _ = try await api.call(.post, "/v1/campaigns", key: a, json: Self.campaignBody(f).merging(["name": "C\(n)"]) { $1 })
            }
            let page1 = try await api.call(.get, "/v1/campaigns?limit=3", key: a)
            #expect(page1.data.count == 3 && page1.next != nil)
            let page2 = try await api.call(.get, "/v1/campaigns?limit=3&after=\(page1.next!)", key: a)
            #expect(page2.data.count == 2 && page2.next == nil)
        }
    }

    @Test func tenantIsolationOnEveryRoute() async throws {
        try await Self.with { f, _, api, a, b in
            let id = try await api.call(.post, "/v1/campaigns", key: a, json: Self.campaignBody(f)).id
            for (method, path) in [(HTTPRequest.Method.get, ""), (.patch, ""), (.post, "/send"), (.post, "/pause"),
                                   (.post, "/resume"), (.post, "/cancel"), (.get, "/stats")] {
                let reply = try await api.call(method, "/v1/campaigns/\(id)\(path)", key: b,
                                               json: method == .patch ? ["name": "stolen"] : nil)
                #expect(reply.status == .notFound && reply.isProblem, "\(method) \(path)")
            }
            #expect(try await api.call(.get, "/v1/campaigns", key: b).data.isEmpty)
            // B cannot point a campaign at A's list.
            let foreign = try await api.call(.post, "/v1/campaigns", key: b, json: Self.campaignBody(f))
            #expect(foreign.status == .unprocessableContent)
            // Nothing changed for A.
            let got = try await api.call(.get, "/v1/campaigns/\(id)", key: a)
            #expect(got.json["name"] as? String == "Launch" && got.json["status"] as? String == "draft")
            #expect(try await api.call(.get, "/v1/campaigns/\(id)", key: nil).status == .unauthorized)
            #expect(try await api.call(.get, "/v1/campaigns/abc", key: a).status == .notFound)
        }
    }

    @Test func sendExpandsAndStatsAndStatusMachine() async throws {
        try await Self.with(count: 120) { f, expander, api, a, _ in
            let id = try await api.call(.post, "/v1/campaigns", key: a, json: Self.campaignBody(f)).id
            let draftStats = try await api.call(.get, "/v1/campaigns/\(id)/stats", key: a)
            #expect(draftStats.json["status"] as? String == "draft" && draftStats.json["total"] as? Int == 0)
            #expect(try await api.call(.post, "/v1/campaigns/\(id)/pause", key: a).status == .conflict)

            let sent = try await api.call(.post, "/v1/campaigns/\(id)/send", key: a)
            #expect(sent.status == .accepted && sent.json["status"] as? String == "sending")
            _ = try await expander.wait(campaign: Int64(id))
            let stats = try await api.call(.get, "/v1/campaigns/\(id)/stats", key: a)
            let expected = f.expected.count
            #expect(stats.status == .ok)
            for key in ["status", "total", "expanded", "sent", "deferred", "bounced", "failed", "unsubscribed"] {
                #expect(stats.json[key] != nil, "stats.\(key)")
            }
            #expect(stats.json["total"] as? Int == expected && stats.json["expanded"] as? Int == expected)
            // Expanded, but no recipient has an outcome yet: still sending, all remaining.
            #expect(stats.json["status"] as? String == "sending")
            #expect(stats.json["remaining"] as? Int == expected && stats.json["cancelled"] as? Int == 0)
            #expect(stats.json["completion"] == nil && stats.json["finished_at"] is NSNull)
            #expect(try f.spooled(campaign: Int64(id)).count == expected)

            // Only drafts change or send.
            let patch = try await api.call(.patch, "/v1/campaigns/\(id)", key: a, json: ["name": "late"])
            #expect(patch.status == .conflict && patch.isProblem)
            #expect(try await api.call(.post, "/v1/campaigns/\(id)/send", key: a).status == .conflict)
            // Its mail still waits: it can be cancelled; every waiting recipient is cancelled.
            let stopped = try await api.call(.post, "/v1/campaigns/\(id)/cancel", key: a)
            #expect(stopped.status == .accepted && stopped.json["status"] as? String == "cancelled")
            let after = try await api.call(.get, "/v1/campaigns/\(id)/stats", key: a)
            #expect(after.json["cancelled"] as? Int == expected && after.json["remaining"] as? Int == 0, "\(after.json)")
            #expect(after.json["estimated_completion"] == nil)
            #expect(try await api.call(.post, "/v1/campaigns/\(id)/cancel", key: a).status == .conflict)

            // Another campaign: cancel from draft; resume only from paused.
            let other = try await api.call(.post, "/v1/campaigns", key: a, json: Self.campaignBody(f)).id
            #expect(try await api.call(.post, "/v1/campaigns/\(other)/resume", key: a).status == .conflict)
            let cancelled = try await api.call(.post, "/v1/campaigns/\(other)/cancel", key: a)
            #expect(cancelled.status == .accepted && cancelled.json["status"] as? String == "cancelled")
            #expect(try await api.call(.post, "/v1/campaigns/\(other)/send", key: a).status == .conflict)
        }
    }
}
