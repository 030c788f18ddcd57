import Foundation
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import CampaignStore
@testable import HTTPAPI

/// `/v1/webhooks`: making, listing, changing and deleting endpoints, the secret shown
/// once and sealed, validation, test-send and the deliveries list, tenant isolation.
@Suite(.serialized, .enabled(if: PostgresServer.isAvailable))
struct HTTPWebhooksTests {
    @Test func crudTestSendAndIsolation() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA
                let made = try await api.call(.post, "/v1/webhooks", key: a, json: [
                    "url": "https://app.example.org/hooks", "events": ["delivered", "bounced", "delivered"],
                    "description": "main"])
                #expect(made.status == .created, "\(made.json)")
                let secret = made.json["secret"] as? String ?? ""
                #expect(secret.count == 64)
                #expect(made.json["events"] as? [String] == ["delivered", "bounced"])
                #expect(made.json["enabled"] as? Bool == true)
                #expect(made.response.headers[.location] == "/v1/webhooks/\(made.id)")
                // Sealed: the secret is not in the database as such.
                #expect(try await f.count("SELECT count(*) FROM webhook_endpoints WHERE secret LIKE '%\(secret)%'") == 0)

                // Shown once: not in the reads.
                let read = try await api.call(.get, "/v1/webhooks/\(made.id)", key: a)
                #expect(read.status == .ok && read.json["secret"] == nil && read.json["url"] as? String == "https://app.example.org/hooks")
                #expect(try await api.call(.get, "/v1/webhooks", key: a).data.map { $0["id"] as? Int } == [made.id])

                for body: [String: Any] in [["url": "ftp://x.example/", "events": ["delivered"]],
                                            ["url": "https://u:p@x.example/", "events": ["delivered"]],
                                            ["url": "https://x.example/", "events": []],
                                            ["url": "https://x.example/", "events": ["opened", "sent"]]] {
                    let bad = try await api.call(.post, "/v1/webhooks", key: a, json: body)
                    #expect(bad.status == .unprocessableContent && bad.isProblem, "\(body): \(bad.json)")
                }

                // Tenant B sees none of it and can change none of it.
                #expect(try await api.call(.get, "/v1/webhooks", key: f.keyB).data.isEmpty)
                for (method, path) in [(HTTPRequest.Method.get, ""), (.delete, ""), (.post, "/test"), (.get, "/deliveries")] {
                    let r = try await api.call(method, "/v1/webhooks/\(made.id)\(path)", key: f.keyB)
                    #expect(r.status == .notFound && r.isProblem, "\(method) \(path)")
                }
                #expect(try await api.call(.patch, "/v1/webhooks/\(made.id)", key: f.keyB,
                                           json: ["enabled": false]).status == .notFound)
                #expect(try await api.call(.get, "/v1/webhooks", key: HTTPListsFixture.configKey).status == .forbidden)

                // A test-send is a pending delivery of a `test` event.
                let test = try await api.call(.post, "/v1/webhooks/\(made.id)/test", key: a)
                #expect(test.status == .accepted, "\(test.json)")
                let deliveries = try await api.call(.get, "/v1/webhooks/\(made.id)/deliveries", key: a)
                #expect(deliveries.data.count == 1)
                #expect(deliveries.data.first?["event_type"] as? String == "test")
                #expect(deliveries.data.first?["event_id"] as? String == test.json["event_id"] as? String)
                #expect(deliveries.data.first?["state"] as? String == "pending")

                // Paused, then a test-send is refused; changed back.
                let paused = try await api.call(.patch, "/v1/webhooks/\(made.id)", key: a,
                                                json: ["enabled": false, "events": ["opened"]])
                #expect(paused.status == .ok && paused.json["enabled"] as? Bool == false
                        && paused.json["events"] as? [String] == ["opened"], "\(paused.json)")
                #expect(try await api.call(.post, "/v1/webhooks/\(made.id)/test", key: a).status == .conflict)
                let resumed = try await api.call(.patch, "/v1/webhooks/\(made.id)", key: a, json: ["enabled": true])
                #expect(resumed.json["enabled"] as? Bool == true && resumed.json["disabled_reason"] is NSNull)

                #expect(try await api.call(.delete, "/v1/webhooks/\(made.id)", key: a).status == .noContent)
                #expect(try await api.call(.get, "/v1/webhooks/\(made.id)", key: a).status == .notFound)
                #expect(try await f.count("SELECT count(*) FROM webhook_deliveries") == 0)
            }
        }
    }
}
