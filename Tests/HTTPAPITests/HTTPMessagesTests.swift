import Foundation
import Hummingbird
import HummingbirdTesting
import Spool
import Testing

import Campaigns
import CampaignStore
import HTTPAPI

/// `POST /v1/messages` and `/healthz` through the router (no database: config keys).
@Suite struct HTTPMessagesTests {
    static let key = "hk_test-key-for-tenant-a"

    struct Fixture {
        let dir: String
        let spool: Spool
        let app: Application<RouterResponder<HeraldRequestContext>>

        init(maxMessageSize: Int = 25 * 1024 * 1024, maxBodySize: Int = 32 * 1024 * 1024) throws {
            dir = NSTemporaryDirectory() + "herald-http-" + UUID().uuidString
            spool = try Spool(path: dir)
            let router = HTTPAPI.makeRouter(
                spool: spool, writer: SpoolWriter(spool: spool),
                verifier: StaticAPIKeys([(tenant: "tenant-a", sha256: APIKey.hash(HTTPMessagesTests.key))]),
                hostname: "herald.test", maxMessageSize: maxMessageSize, maxBodySize: maxBodySize)
            app = Application(router: router)
        }

        func cleanup() { try? FileManager.default.removeItem(atPath: dir) }

        func queued() throws -> [(Envelope, String)] {
            try spool.enumerate(.queue).map { id in
                let env = try spool.loadEnvelope(id, in: .queue)
                return (env, String(decoding: try spool.loadMessage(id, in: .queue), as: UTF8.self))
            }
        }
    }

    static func json(_ object: Any) -> ByteBuffer {
        ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: object))
    }

    static var auth: HTTPFields { [.authorization: "Bearer \(key)", .contentType: "application/json"] }

    static func problem(_ response: TestResponse) throws -> [String: Any] {
        #expect(response.headers[.contentType] == "application/problem+json")
        return try #require(JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
    }

    @Test func healthz() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                let body = try #require(JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: String])
                #expect(body["status"] == "ok")
                #expect(body["database"] == "not configured")
            }
        }
    }

    @Test(arguments: [nil, "Bearer wrong", "Basic abc", "Bearer "])
    func unauthorized(_ header: String?) async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        var headers: HTTPFields = [.contentType: "application/json"]
        if let header { headers[.authorization] = header }
        let sent = headers
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/v1/messages", method: .post, headers: sent,
                                     body: Self.json(["from": "a@x.test", "subject": "s", "text": "t",
                                                      "recipients": [["email": "b@y.test"]]])) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                let p = try Self.problem(response)
                #expect(p["status"] as? Int == 401)
                #expect((p["detail"] as? String)?.isEmpty == false)
            }
        }
        #expect(try f.queued().isEmpty)
    }

    @Test func personalizedMessagesAreQueued() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let body: [String: Any] = [
            "from": "News <news@sender.test>",
            "subject": "Hello {{first_name}}",
            "text": "Dear {{name}}, your plan is {{attributes.plan}}.",
            "recipients": [
                ["email": "ann@a.test", "first_name": "Ann", "attributes": ["plan": "gold"]],
                ["email": "bob@b.test", "first_name": "Bob", "last_name": "Bell", "attributes": ["plan": "free"]],
                ["email": "cy@c.test", "first_name": "Cy\r\nBcc: victim@evil.test", "attributes": ["plan": "x"]],
            ],
        ]
        let payload = Self.json(body)
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/v1/messages", method: .post, headers: Self.auth, body: payload) { response in
                #expect(response.status == .accepted)
                let reply = try #require(JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(reply["accepted"] as? Int == 3)
                let messages = try #require(reply["messages"] as? [[String: String]])
                #expect(messages.map { $0["email"] } == ["ann@a.test", "bob@b.test", "cy@c.test"])
            }
        }
        let queued = try f.queued()
        #expect(queued.count == 3)
        for (env, text) in queued {
            #expect(env.tenant == "tenant-a")
            #expect(env.sender == "news@sender.test")
            let rcpt = env.recipients[0].address
            let headerSection = text.components(separatedBy: "\r\n\r\n")[0]
            #expect(!headerSection.lowercased().contains("\r\nbcc:"), "injected header in \(rcpt)")
            if rcpt == "ann@a.test" { #expect(text.contains("Subject: Hello Ann")) }
            if rcpt == "bob@b.test" { #expect(text.contains("Dear Bob Bell, your plan is free.")) }
        }
    }

    @Test func badRequestsLeaveNothingBehind() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let cases: [(ByteBuffer, HTTPResponse.Status, String)] = [
            (ByteBuffer(string: "{not json"), .badRequest, "not valid JSON"),
            (Self.json(["from": "a@x.test", "subject": "s", "text": "t"]), .badRequest, "recipients"),
            (Self.json(["from": "a@x.test", "subject": "Hi {{frist_name}}", "text": "t",
                        "recipients": [["email": "b@y.test"]]]), .unprocessableContent, "frist_name"),
            (Self.json(["from": "a@x.test", "subject": "s", "text": "t",
                        "recipients": [["email": "ok@y.test"], ["email": "not an address"]]]), .unprocessableContent,
             "recipients[1]"),
            (Self.json(["from": "nobody", "subject": "s", "text": "t", "recipients": [["email": "b@y.test"]]]),
             .unprocessableContent, "from"),
            (Self.json(["from": "a@x.test", "subject": "s", "text": "t", "recipients": [[String: String]]()]),
             .unprocessableContent, "at least one"),
            (Self.json(["from": "a@x.test", "subject": "s", "text": "t",
                        "recipients": (0...MessagesV1.maxRecipients).map { ["email": "r\($0)@y.test"] }]),
             .unprocessableContent, "at most"),
        ]
        try await f.app.test(.router) { client in
            for (body, status, mention) in cases {
                try await client.execute(uri: "/v1/messages", method: .post, headers: Self.auth, body: body) { response in
                    #expect(response.status == status, "\(mention)")
                    let p = try Self.problem(response)
                    let text = "\(p["detail"] ?? "") \(p["errors"] ?? "")"
                    #expect(text.contains(mention), "problem for \(mention): \(text)")
                }
            }
        }
        #expect(try f.queued().isEmpty)
    }

    /// The limits of SMTP hold here too: each rendered message within `smtp.max_message_size`,
    /// the body within `http.max_body_size`, and the body must be sent as JSON.
    @Test func sizeLimitsAndMediaType() async throws {
        let f = try Fixture(maxMessageSize: 4000, maxBodySize: 20_000)
        defer { f.cleanup() }
        let big = String(repeating: "x", count: 5000)
        let grows = "{{attributes.blob}}"
        let cases: [(ByteBuffer, HTTPFields, HTTPResponse.Status, String)] = [
            // A template over the limit: refused before rendering.
            (Self.json(["from": "a@x.test", "subject": "s", "text": big, "recipients": [["email": "b@y.test"]]]),
             Self.auth, .contentTooLarge, "at most 4000 bytes (smtp.max_message_size)"),
            // A variable that makes one recipient's message too large: nothing is queued.
            (Self.json(["from": "a@x.test", "subject": "s", "text": grows, "recipients": [
                ["email": "ok@y.test", "attributes": ["blob": "small"]],
                ["email": "big@y.test", "attributes": ["blob": String(repeating: "y ", count: 2500)]],
            ]]), Self.auth, .contentTooLarge, "recipients[1] (big@y.test)"),
            // A body over http.max_body_size.
            (Self.json(["from": "a@x.test", "subject": "s", "text": "t",
                        "recipients": (0..<1000).map { ["email": "r\($0)@y.test"] }]),
             Self.auth, .contentTooLarge, "larger than 20000 bytes"),
            // JSON sent as something else, or without a type.
            (Self.json(["from": "a@x.test", "subject": "s", "text": "t", "recipients": [["email": "b@y.test"]]]),
             [.authorization: "Bearer \(Self.key)", .contentType: "text/plain"], .unsupportedMediaType, "\"text/plain\""),
            (Self.json(["from": "a@x.test", "subject": "s", "text": "t", "recipients": [["email": "b@y.test"]]]),
             [.authorization: "Bearer \(Self.key)"], .unsupportedMediaType, "application/json"),
        ]
        try await f.app.test(.router) { client in
            for (body, headers, status, mention) in cases {
                try await client.execute(uri: "/v1/messages", method: .post, headers: headers, body: body) { response in
                    #expect(response.status == status, "\(mention)")
                    let p = try Self.problem(response)
                    #expect("\(p["detail"] ?? "")".contains(mention), "\(mention): \(p)")
                }
            }
            // JSON with a charset, and a +json type, are JSON.
            for type in ["application/json; charset=utf-8", "application/vnd.herald+json"] {
                let body = Self.json(["from": "a@x.test", "subject": "s", "text": "t", "recipients": [["email": "b@y.test"]]])
                try await client.execute(uri: "/v1/messages", method: .post,
                                         headers: [.authorization: "Bearer \(Self.key)", .contentType: type],
                                         body: body) { response in
                    #expect(response.status == .accepted, "\(type)")
                }
            }
        }
        #expect(try f.queued().count == 2)
    }
}
