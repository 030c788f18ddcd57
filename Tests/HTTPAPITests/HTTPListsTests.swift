import Foundation
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import HTTPAPI

/// Lists, subscribers and CSV import through the HTTP routes, on a real PostgreSQL.
@Suite("HTTP lists and subscribers", .serialized, .enabled(if: PostgresServer.isAvailable))
struct HTTPListsTests {
    @Test func listsCreateGetPageRenameDelete() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA
                let created = try await api.call(.post, "/v1/lists", key: a, json: ["name": "  Newsletter "])
                #expect(created.status == .created)
                #expect(created.json["name"] as? String == "Newsletter")
                #expect(created.json["subscriber_count"] as? Int == 0)
                #expect(created.json["created_at"] is String && created.json["updated_at"] is String)
                #expect(created.response.headers[.location] == "/v1/lists/\(created.id)")
                let id = created.id
                #expect(id > 0)

                let got = try await api.call(.get, "/v1/lists/\(id)", key: a)
                #expect(got.status == .ok && got.id == id && got.json["name"] as? String == "Newsletter")

                let renamed = try await api.call(.patch, "/v1/lists/\(id)", key: a, json: ["name": "Weekly"])
                #expect(renamed.status == .ok && renamed.json["name"] as? String == "Weekly")
                #expect(try await api.call(.get, "/v1/lists/\(id)", key: a).json["name"] as? String == "Weekly")

                // Cursor pagination over 7 lists, 3 at a time.
                var ids = [id]
                for n in 2...7 { ids.append(try await api.call(.post, "/v1/lists", key: a, json: ["name": "L\(n)"]).id) }
                var seen: [Int] = []
                var cursor: Int?
                var pages = 0
                repeat {
                    let page = try await api.call(.get, "/v1/lists?limit=3" + (cursor.map { "&after=\($0)" } ?? ""), key: a)
                    #expect(page.status == .ok)
                    seen += page.data.compactMap { ($0["id"] as? NSNumber)?.intValue }
                    cursor = page.next
                    pages += 1
                } while cursor != nil && pages < 10
                #expect(seen == ids)
                #expect(pages == 3)
                // The default page holds them all, with a null `next`.
                let all = try await api.call(.get, "/v1/lists", key: a)
                #expect(all.data.count == 7 && all.json["next"] is NSNull)

                let deleted = try await api.call(.delete, "/v1/lists/\(id)", key: a)
                #expect(deleted.status == .noContent)
                let gone = try await api.call(.get, "/v1/lists/\(id)", key: a)
                #expect(gone.status == .notFound && gone.isProblem)
                #expect(try await api.call(.delete, "/v1/lists/\(id)", key: a).status == .notFound)
            }
        }
    }

    @Test func subscribersAddIsIdempotentFindGetRemoveDelete() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA
                let list = try await api.call(.post, "/v1/lists", key: a, json: ["name": "news"]).id
                let other = try await api.call(.post, "/v1/lists", key: a, json: ["name": "other"]).id
                let body: [String: Any] = ["email": "Ada@Example.COM", "first_name": "Ada", "last_name": "Lovelace",
                                           "attributes": ["plan": "pro", "seats": 3]]
                let first = try await api.call(.post, "/v1/lists/\(list)/subscribers", key: a, json: body)
                #expect(first.status == .created)
                #expect(first.json["email"] as? String == "ada@example.com")
                #expect(first.json["status"] as? String == "active")
                #expect(first.json["name"] is NSNull)
                #expect((first.json["attributes"] as? [String: Any])?["seats"] as? Int == 3)
                let sid = first.id

                // The same again: 200, same subscriber, nothing new.
                let again = try await api.call(.post, "/v1/lists/\(list)/subscribers", key: a, json: body)
                #expect(again.status == .ok && again.id == sid)
                #expect(try await f.count("SELECT count(*) FROM subscribers") == 1)
                #expect(try await f.count("SELECT count(*) FROM list_members") == 1)

                // An update: new field, attributes merged, status set.
                let update = try await api.call(.post, "/v1/lists/\(list)/subscribers", key: a,
                                                json: ["email": "ada@example.com", "name": "Ada L.",
                                                       "attributes": ["plan": "team"], "status": "unsubscribed"])
                #expect(update.status == .ok && update.id == sid)
                #expect(update.json["name"] as? String == "Ada L." && update.json["first_name"] as? String == "Ada")
                let attributes = update.json["attributes"] as? [String: Any]
                #expect(attributes?["plan"] as? String == "team" && attributes?["seats"] as? Int == 3)
                #expect(update.json["status"] as? String == "unsubscribed")

                // The same address on a second list: same subscriber, 200.
                let onOther = try await api.call(.post, "/v1/lists/\(other)/subscribers", key: a,
                                                 json: ["email": "ada@example.com"])
                #expect(onOther.status == .ok && onOther.id == sid && onOther.json["status"] as? String == "unsubscribed")

                let found = try await api.call(.get, "/v1/lists/\(list)/subscribers?email=ADA@example.com", key: a)
                #expect(found.status == .ok && found.id == sid && found.json["status"] as? String == "unsubscribed")
                let missing = try await api.call(.get, "/v1/lists/\(list)/subscribers?email=bob@example.com", key: a)
                #expect(missing.status == .notFound && missing.isProblem)

                let byID = try await api.call(.get, "/v1/subscribers/\(sid)", key: a)
                #expect(byID.status == .ok && byID.json["email"] as? String == "ada@example.com")

                let bob = try await api.call(.post, "/v1/lists/\(list)/subscribers", key: a,
                                             json: ["email": "bob@example.com", "status": "active"])
                #expect(bob.status == .created)
                let active = try await api.call(.get, "/v1/lists/\(list)/subscribers?status=active", key: a)
                #expect(active.data.map { $0["email"] as? String } == ["bob@example.com"])
                let unsubscribed = try await api.call(.get, "/v1/lists/\(list)/subscribers?status=unsubscribed", key: a)
                #expect(unsubscribed.data.map { $0["email"] as? String } == ["ada@example.com"])
                let everyone = try await api.call(.get, "/v1/subscribers", key: a)
                #expect(everyone.data.count == 2 && everyone.json["next"] is NSNull)

                // Off one list: still on the other, still the tenant's.
                let removed = try await api.call(.delete, "/v1/lists/\(list)/subscribers/\(sid)", key: a)
                #expect(removed.status == .noContent)
                #expect(try await api.call(.get, "/v1/lists/\(list)/subscribers?email=ada@example.com", key: a).status
                    == .notFound)
                #expect(try await api.call(.get, "/v1/lists/\(other)/subscribers?email=ada@example.com", key: a).status
                    == .ok)
                #expect(try await api.call(.delete, "/v1/lists/\(list)/subscribers/\(sid)", key: a).status == .notFound)
                #expect(try await api.call(.get, "/v1/lists/\(list)", key: a).json["subscriber_count"] as? Int == 1)

                // Deleted: gone from every list.
                #expect(try await api.call(.delete, "/v1/subscribers/\(sid)", key: a).status == .noContent)
                #expect(try await api.call(.get, "/v1/subscribers/\(sid)", key: a).status == .notFound)
                #expect(try await api.call(.get, "/v1/lists/\(other)/subscribers?email=ada@example.com", key: a).status
                    == .notFound)
                #expect(try await api.call(.delete, "/v1/subscribers/\(sid)", key: a).status == .notFound)
            }
        }
    }

    @Test func subscribersSearchByPartOfEmailOrName() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let (a, b) = (f.keyA, f.keyB)
                let list = try await api.call(.post, "/v1/lists", key: a, json: ["name": "news"]).id
                for (email, first, last) in [("ada@example.com", "Ada", "Lovelace"), ("grace@navy.example", "Grace", "Hopper"),
                                             ("alan@example.org", "Alan", "Turing"), ("pct@example.net", "100%", "_x_")] {
                    let r = try await api.call(.post, "/v1/lists/\(list)/subscribers", key: a,
                                               json: ["email": email, "first_name": first, "last_name": last])
                    #expect(r.status == .created)
                }
                func emails(_ query: String, key: String? = nil) async throws -> [String] {
                    let r = try await api.call(.get, "/v1/lists/\(list)/subscribers?\(query)", key: key ?? a)
                    return (r.json["data"] as? [[String: Any]] ?? []).compactMap { $0["email"] as? String }
                }
                #expect(try await emails("q=EXAMPLE.COM") == ["ada@example.com"])
                #expect(try await emails("q=hop") == ["grace@navy.example"], "a last name")
                #expect(try await emails("q=a") == ["ada@example.com", "grace@navy.example", "alan@example.org", "pct@example.net"])
                #expect(try await emails("q=%25") == ["pct@example.net"], "% is text, not a pattern")
                #expect(try await emails("q=_x") == ["pct@example.net"], "_ is text, not a pattern")
                #expect(try await emails("q=nobody").isEmpty)
                #expect(try await emails("q=a&status=unsubscribed").isEmpty)
                #expect(try await emails("q=a&limit=2") == ["ada@example.com", "grace@navy.example"])
                // Across the tenant's subscribers too; another tenant finds none of them.
                let all = try await api.call(.get, "/v1/subscribers?q=turing", key: a)
                #expect((all.json["data"] as? [[String: Any]])?.compactMap { $0["email"] as? String } == ["alan@example.org"])
                let foreign = try await api.call(.get, "/v1/subscribers?q=turing", key: b)
                #expect((foreign.json["data"] as? [Any])?.isEmpty == true, "\(foreign.json)")
                #expect(try await api.call(.get, "/v1/lists/\(list)/subscribers?q=a", key: b).status == .notFound)
                let long = try await api.call(.get, "/v1/lists/\(list)/subscribers?q=" + String(repeating: "x", count: 201), key: a)
                #expect(long.status == .badRequest)
            }
        }
    }

    @Test func anotherTenantsObjectsAre404AndUntouched() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA, b = f.keyB
                let list = try await api.call(.post, "/v1/lists", key: a, json: ["name": "A's list"]).id
                let sid = try await api.call(.post, "/v1/lists/\(list)/subscribers", key: a,
                                             json: ["email": "secret@a.example"]).id
                let bList = try await api.call(.post, "/v1/lists", key: b, json: ["name": "B's list"]).id
                let before = try await f.counts()

                let attempts: [(HTTPRequest.Method, String, Any?)] = [
                    (.get, "/v1/lists/\(list)", nil),
                    (.patch, "/v1/lists/\(list)", ["name": "stolen"]),
                    (.delete, "/v1/lists/\(list)", nil),
                    (.post, "/v1/lists/\(list)/subscribers", ["email": "intruder@b.example"]),
                    (.post, "/v1/lists/\(list)/subscribers", ["email": "secret@a.example", "status": "bounced"]),
                    (.get, "/v1/lists/\(list)/subscribers", nil),
                    (.get, "/v1/lists/\(list)/subscribers?email=secret@a.example", nil),
                    (.get, "/v1/lists/\(list)/subscribers?status=active", nil),
                    (.get, "/v1/subscribers/\(sid)", nil),
                    (.delete, "/v1/subscribers/\(sid)", nil),
                    (.delete, "/v1/lists/\(list)/subscribers/\(sid)", nil),
                    (.delete, "/v1/lists/\(bList)/subscribers/\(sid)", nil),
                    (.get, "/v1/subscribers?email=secret@a.example", nil),
                ]
                for (method, uri, json) in attempts {
                    let reply = try await api.call(method, uri, key: b, json: json)
                    #expect(reply.status == .notFound, "\(method) \(uri)")
                    #expect(reply.isProblem, "\(method) \(uri)")
                    // Nothing of A's shows (an address B sent itself may be echoed).
                    #expect(!reply.detail.contains("A's"), "\(method) \(uri)")
                    if !uri.contains("secret") && (json as? [String: String])?["email"]?.contains("secret") != true {
                        #expect(!reply.detail.contains("secret"), "\(method) \(uri)")
                    }
                }
                let csv = ByteBuffer(string: "email\nintruder@b.example\n")
                let imported = try await api.call(.post, "/v1/lists/\(list)/import", key: b, body: csv,
                                                  contentType: "text/csv")
                #expect(imported.status == .notFound && imported.isProblem)

                // B's listings do not show A's objects.
                #expect(try await api.call(.get, "/v1/lists", key: b).data.map { ($0["id"] as? NSNumber)?.intValue }
                    == [bList])
                #expect(try await api.call(.get, "/v1/subscribers", key: b).data.isEmpty)

                // A's objects are as they were.
                #expect(try await f.counts() == before)
                let mine = try await api.call(.get, "/v1/lists/\(list)/subscribers?email=secret@a.example", key: a)
                #expect(mine.status == .ok && mine.json["status"] as? String == "active")
                #expect(try await api.call(.get, "/v1/lists/\(list)", key: a).json["name"] as? String == "A's list")
            }
        }
    }

    @Test func badInputIsAProblemAndWritesNothing() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA
                let list = try await api.call(.post, "/v1/lists", key: a, json: ["name": "news"]).id
                _ = try await api.call(.post, "/v1/lists/\(list)/subscribers", key: a, json: ["email": "one@example.com"])
                let before = try await f.counts()
                let subs = "/v1/lists/\(list)/subscribers"
                let big = ByteBuffer(string: "{\"email\":\"big@example.com\",\"name\":\""
                    + String(repeating: "x", count: APIInput.maxJSONBody) + "\"}")
                let cases: [(HTTPRequest.Method, String, ByteBuffer?, Any?, HTTPResponse.Status, String)] = [
                    (.post, "/v1/lists", ByteBuffer(string: "{not json"), nil, .badRequest, "malformed JSON"),
                    (.post, "/v1/lists", ByteBuffer(), nil, .badRequest, "empty"),
                    (.post, "/v1/lists", nil, ["title": "x"], .badRequest, "name: this field is required"),
                    (.post, "/v1/lists", nil, ["name": 42], .badRequest, "name"),
                    (.post, "/v1/lists", nil, ["name": "   "], .unprocessableContent, "must not be empty"),
                    (.post, "/v1/lists", nil, ["name": String(repeating: "n", count: 501)], .unprocessableContent, "longer"),
                    (.patch, "/v1/lists/\(list)", nil, ["name": ""], .unprocessableContent, "must not be empty"),
                    (.post, subs, ByteBuffer(string: "[1,2"), nil, .badRequest, "malformed JSON"),
                    (.post, subs, nil, ["name": "no address"], .badRequest, "email: this field is required"),
                    (.post, subs, nil, ["email": "not-an-address"], .unprocessableContent, "not a valid address"),
                    (.post, subs, nil, ["email": "a@b@example.com"], .unprocessableContent, "not a valid address"),
                    (.post, subs, nil, ["email": "x@example.com", "status": "gone"], .unprocessableContent,
                     "unknown status \"gone\""),
                    (.post, subs, nil, ["email": "x@example.com", "attributes": ["a", "b"]], .badRequest, "attributes"),
                    (.post, subs, big, nil, .contentTooLarge, "larger than"),
                    (.get, subs + "?status=gone", nil, nil, .unprocessableContent, "active, unsubscribed, bounced"),
                    (.get, subs + "?email=nobody", nil, nil, .unprocessableContent, "not a valid address"),
                    (.get, subs + "?limit=0", nil, nil, .badRequest, "limit"),
                    (.get, subs + "?limit=5000", nil, nil, .badRequest, "from 1 to 1000"),
                    (.get, subs + "?after=abc", nil, nil, .badRequest, "after"),
                    (.get, "/v1/lists?limit=x", nil, nil, .badRequest, "limit"),
                    (.get, "/v1/lists/abc", nil, nil, .notFound, "list not found"),
                    (.get, "/v1/lists/-1", nil, nil, .notFound, "list not found"),
                    (.patch, "/v1/lists/99999999999999999999", nil, ["name": "x"], .notFound, "list not found"),
                    (.post, "/v1/lists/abc/subscribers", nil, ["email": "x@example.com"], .notFound, "list not found"),
                    (.get, "/v1/subscribers/abc", nil, nil, .notFound, "subscriber not found"),
                    (.delete, "/v1/subscribers/0", nil, nil, .notFound, "subscriber not found"),
                    (.post, "/v1/lists/\(list + 1000)/subscribers", nil, ["email": "x@example.com"], .notFound,
                     "list \(list + 1000) not found"),
                ]
                for (method, uri, body, json, status, mention) in cases {
                    let reply = try await api.call(method, uri, key: a, json: json, body: body,
                                                   contentType: body == nil ? nil : "application/json")
                    #expect(reply.status == status, "\(method) \(uri) \(mention): \(reply.detail)")
                    #expect(reply.isProblem, "\(method) \(uri)")
                    #expect(reply.detail.contains(mention), "\(method) \(uri): \(reply.detail)")
                }
                // Authentication: none, unknown, and a config-file key (no database tenant).
                let anonymous = try await api.call(.get, "/v1/lists", key: nil)
                #expect(anonymous.status == .unauthorized && anonymous.isProblem)
                let unknown = try await api.call(.get, "/v1/lists", key: "hk_" + String(repeating: "A", count: 43))
                #expect(unknown.status == .unauthorized && unknown.isProblem)
                let config = try await api.call(.post, "/v1/lists", key: HTTPListsFixture.configKey, json: ["name": "x"])
                #expect(config.status == .forbidden && config.isProblem && config.detail.contains("herald tenant create"))

                #expect(try await f.counts() == before)
                #expect(try await api.call(.get, "/v1/lists/\(list)", key: a).json["name"] as? String == "news")
            }
        }
    }

    @Test func paginationReturnsEverySubscriberExactlyOnce() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA
                let list = try await api.call(.post, "/v1/lists", key: a, json: ["name": "many"]).id
                let other = try await api.call(.post, "/v1/lists", key: a, json: ["name": "others"]).id
                var csv = "email,first_name\n"
                for n in 1...1234 { csv += "p\(n)@example.com,P\(n)\n" }
                let imported = try await api.call(.post, "/v1/lists/\(list)/import", key: a,
                                                  body: ByteBuffer(string: csv), contentType: "text/csv")
                #expect(imported.json["imported"] as? Int == 1234)
                // Some on another list only, some unsubscribed.
                for n in 1...20 {
                    _ = try await api.call(.post, "/v1/lists/\(other)/subscribers", key: a, json: ["email": "o\(n)@example.com"])
                }
                var unsubscribed = Set<String>()
                for n in stride(from: 5, through: 1234, by: 97) {
                    let r = try await api.call(.post, "/v1/lists/\(list)/subscribers", key: a,
                                               json: ["email": "p\(n)@example.com", "status": "unsubscribed"])
                    #expect(r.status == .ok)
                    unsubscribed.insert("p\(n)@example.com")
                }

                func walk(_ query: String, limit: Int) async throws -> [String] {
                    var emails: [String] = []
                    var cursor: Int?
                    var pages = 0
                    repeat {
                        let uri = "/v1/lists/\(list)/subscribers?limit=\(limit)\(query)" + (cursor.map { "&after=\($0)" } ?? "")
                        let page = try await api.call(.get, uri, key: a)
                        #expect(page.status == .ok)
                        #expect(page.data.count <= limit)
                        emails += page.data.compactMap { $0["email"] as? String }
                        cursor = page.next
                        pages += 1
                    } while cursor != nil && pages < 2000
                    return emails
                }
                let all = try await walk("", limit: 100)
                #expect(all.count == 1234)
                #expect(Set(all).count == 1234)
                #expect(Set(all) == Set((1...1234).map { "p\($0)@example.com" }))
                #expect(try await walk("", limit: 1000).count == 1234)
                #expect(try await walk("", limit: 1234 / 2).count == 1234)  // last page exactly full
                let active = try await walk("&status=active", limit: 77)
                #expect(active.count == 1234 - unsubscribed.count && Set(active).isDisjoint(with: unsubscribed))
                #expect(Set(try await walk("&status=unsubscribed", limit: 3)) == unsubscribed)
            }
        }
    }
}
