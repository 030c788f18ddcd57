import Foundation
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import CampaignStore
@testable import HTTPAPI

/// `/v1/suppressions`: add, find, page, export, lift; tenant-scoped; and
/// `POST /v1/messages` leaving suppressed recipients out.
@Suite(.serialized, .enabled(if: PostgresServer.isAvailable))
struct HTTPSuppressionsTests {
    @Test func addFindPageExportLift() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA
                let added = try await api.call(.post, "/v1/suppressions", key: a, json: ["email": "Ann@Example.TEST"])
                #expect(added.status == .created, "\(added.json)")
                #expect(added.json["email"] as? String == "ann@example.test" && added.json["reason"] as? String == "manual")
                #expect(added.json["campaign_id"] is NSNull && added.json["created_at"] is String)
                let again = try await api.call(.post, "/v1/suppressions", key: a,
                                               json: ["email": "ann@example.test", "reason": "bounced"])
                #expect(again.status == .ok && again.json["reason"] as? String == "manual", "the first one stays")
                for n in 1...4 {
                    let r = try await api.call(.post, "/v1/suppressions", key: a,
                                               json: ["email": "u\(n)@example.test", "reason": n % 2 == 0 ? "complained" : "bounced"])
                    #expect(r.status == .created)
                }
                // Pages of two, in the order they were made.
                var emails: [String] = []
                var cursor: Int?
                repeat {
                    let page = try await api.call(.get, "/v1/suppressions?limit=2" + (cursor.map { "&after=\($0)" } ?? ""), key: a)
                    #expect(page.status == .ok && page.data.count <= 2)
                    emails += page.data.compactMap { $0["email"] as? String }
                    cursor = page.next
                } while cursor != nil
                #expect(emails == ["ann@example.test", "u1@example.test", "u2@example.test", "u3@example.test", "u4@example.test"])
                let complained = try await api.call(.get, "/v1/suppressions?reason=complained", key: a)
                #expect(complained.data.compactMap { $0["email"] as? String } == ["u2@example.test", "u4@example.test"])
                let one = try await api.call(.get, "/v1/suppressions?email=U3@example.test", key: a)
                #expect(one.status == .ok && one.json["reason"] as? String == "bounced")

                let csv = try await api.call(.get, "/v1/suppressions.csv", key: a)
                #expect(csv.status == .ok && csv.response.headers[.contentType] == "text/csv; charset=utf-8")
                let lines = String(buffer: csv.response.body).split(separator: "\r\n")
                #expect(lines.first == "email,reason,campaign_id,created_at" && lines.count == 6, "\(lines)")
                #expect(lines.dropFirst().first?.hasPrefix("ann@example.test,manual,,20") == true)

                // Tenant B sees none of them and cannot lift them.
                let b = f.keyB
                #expect(try await api.call(.get, "/v1/suppressions", key: b).data.isEmpty)
                #expect(try await api.call(.delete, "/v1/suppressions/ann@example.test", key: b).status == .notFound)
                #expect(try await api.call(.get, "/v1/suppressions?email=ann@example.test", key: b).status == .notFound)

                #expect(try await api.call(.delete, "/v1/suppressions/ann@example.test", key: a).status == .noContent)
                #expect(try await api.call(.delete, "/v1/suppressions/ann@example.test", key: a).status == .notFound)
                #expect(try await api.call(.get, "/v1/suppressions?email=ann@example.test", key: a).status == .notFound)
            }
        }
    }

    @Test func badInputIsAProblem() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let bad = try await api.call(.post, "/v1/suppressions", key: f.keyA, json: ["email": "not an address"])
                #expect(bad.status == .unprocessableContent && bad.isProblem, "\(bad.json)")
                let reason = try await api.call(.post, "/v1/suppressions", key: f.keyA,
                                                json: ["email": "a@example.test", "reason": "annoyed"])
                #expect(reason.status == .unprocessableContent && reason.detail.contains("manual"), "\(reason.json)")
                let filter = try await api.call(.get, "/v1/suppressions?reason=annoyed", key: f.keyA)
                #expect(filter.status == .unprocessableContent && filter.isProblem)
                let config = try await api.call(.get, "/v1/suppressions", key: HTTPListsFixture.configKey)
                #expect(config.status == .forbidden && config.isProblem)
                #expect(try await f.count("SELECT count(*) FROM suppressions") == 0)
            }
        }
    }

    @Test func messagesLeaveSuppressedRecipientsOut() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA
                _ = try await api.call(.post, "/v1/suppressions", key: a, json: ["email": "gone@example.test", "reason": "bounced"])
                let sent = try await api.call(.post, "/v1/messages", key: a, json: [
                    "from": "News <news@example.test>", "subject": "Hi", "text": "Hello",
                    "recipients": [["email": "ok@example.test"], ["email": "GONE@example.test"]],
                ] as [String: Any])
                #expect(sent.status == .accepted, "\(sent.json)")
                #expect(sent.json["accepted"] as? Int == 1)
                let messages = sent.json["messages"] as? [[String: Any]] ?? []
                #expect(messages.compactMap { $0["email"] as? String } == ["ok@example.test"])
                let suppressed = sent.json["suppressed"] as? [[String: Any]] ?? []
                #expect(suppressed.count == 1 && suppressed.first?["email"] as? String == "GONE@example.test"
                        && suppressed.first?["reason"] as? String == "bounced", "\(suppressed)")
                // Another tenant's suppression does not apply.
                let other = try await api.call(.post, "/v1/messages", key: f.keyB, json: [
                    "from": "News <news@example.test>", "subject": "Hi", "text": "Hello",
                    "recipients": [["email": "gone@example.test"]],
                ] as [String: Any])
                #expect(other.json["accepted"] as? Int == 1 && (other.json["suppressed"] as? [Any])?.isEmpty == true)
            }
        }
    }
}
