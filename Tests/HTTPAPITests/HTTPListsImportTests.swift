import Foundation
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import HTTPAPI

/// `POST /v1/lists/{id}/import` on a real PostgreSQL.
@Suite("HTTP lists CSV import", .serialized, .enabled(if: PostgresServer.isAvailable))
struct HTTPListsImportTests {
    static func lines(_ reply: Reply) -> [Int] {
        (reply.json["rejected"] as? [[String: Any]] ?? []).compactMap { $0["line"] as? Int }
    }

    @Test func tenThousandRowsOverRealHTTPWithBadLinesReportedByNumber() async throws {
        try await HTTPListsFixture.with { f in
            let csv = await generatedCSV(rows: 10_000, invalid: [50, 5_000, 10_001], duplicate: [777])
            try await f.testLive { api in
                let a = f.keyA
                let list = try await api.call(.post, "/v1/lists", key: a, json: ["name": "big"]).id
                let reply = try await api.call(.post, "/v1/lists/\(list)/import", key: a, body: csv,
                                               contentType: "text/csv; charset=utf-8")
                #expect(reply.status == .ok, "\(reply.json)")
                #expect(reply.json["rows"] as? Int == 10_000)
                #expect(reply.json["imported"] as? Int == 9_996)
                #expect(reply.json["created"] as? Int == 9_996)
                #expect(reply.json["updated"] as? Int == 0)
                #expect(reply.json["added_to_list"] as? Int == 9_996)
                #expect(reply.json["rejected_count"] as? Int == 4)
                #expect(reply.json["rejected_truncated"] as? Bool == false)
                #expect(Self.lines(reply) == [50, 777, 5_000, 10_001])
                let rejected = reply.json["rejected"] as? [[String: Any]] ?? []
                #expect((rejected.first?["reason"] as? String)?.contains("invalid address") == true)
                #expect((rejected.first?["email"] as? String) == "user50-at-nowhere")
                #expect((rejected[safe: 1]?["reason"] as? String) == "duplicate of line 2")

                #expect(try await f.count("SELECT count(*) FROM subscribers") == 9_996)
                #expect(try await api.call(.get, "/v1/lists/\(list)", key: a).json["subscriber_count"] as? Int == 9_996)
                let one = try await api.call(.get, "/v1/lists/\(list)/subscribers?email=user4242@example.com", key: a)
                #expect(one.status == .ok)
                #expect(one.json["first_name"] as? String == "First4242")
                #expect(one.json["last_name"] as? String == "Last, 4242")
                #expect(one.json["status"] as? String == "active")
                let attributes = one.json["attributes"] as? [String: Any]
                #expect(attributes?["plan"] as? String == "pro" && attributes?["city"] as? String == "City \(4242 % 97)")

                // Large bodies the route stops reading early: another tenant's list (404),
                // a header without an email column (422). Nothing is written, nothing hangs.
                let intruder = try await api.call(.post, "/v1/lists/\(list)/import", key: f.keyB, body: csv,
                                                  contentType: "text/csv")
                #expect(intruder.status == .notFound && intruder.isProblem)
                var noEmail = ByteBuffer(string: "name,city\n")
                for n in 0..<20_000 { noEmail.writeString("Name \(n),City \(n)\n") }
                let headerless = try await api.call(.post, "/v1/lists/\(list)/import", key: a, body: noEmail,
                                                    contentType: "text/csv")
                #expect(headerless.status == .unprocessableContent && headerless.detail.contains("no email column"))
                #expect(try await f.count("SELECT count(*) FROM subscribers") == 9_996)

                // The same file again: nothing new, nothing changed.
                let again = try await api.call(.post, "/v1/lists/\(list)/import", key: a, body: csv,
                                               contentType: "text/csv")
                #expect(again.status == .ok)
                #expect(again.json["created"] as? Int == 0 && again.json["updated"] as? Int == 0)
                #expect(again.json["unchanged"] as? Int == 9_996 && again.json["added_to_list"] as? Int == 0)
                #expect(try await f.count("SELECT count(*) FROM subscribers") == 9_996)
            }
        }
    }

    @Test func columnsMapToFieldsAndAttributesAndUpdatesAreCounted() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA
                let list = try await api.call(.post, "/v1/lists", key: a, json: ["name": "csv"]).id
                _ = try await api.call(.post, "/v1/lists/\(list)/subscribers", key: a,
                                       json: ["email": "old@example.com", "status": "unsubscribed"])
                let csv = "name,Email,first_name,last_name,Company\r\n"
                    + "Ada L,ada@example.com,Ada,Lovelace,\"Engines, Ltd\"\r\n"
                    + "Old,OLD@example.com,,,\r\n"
                    + "Nobody,,,,\r\n"
                    + "Too,many@example.com,a,b,c,d\r\n"
                let reply = try await api.call(.post, "/v1/lists/\(list)/import", key: a, body: ByteBuffer(string: csv),
                                               contentType: "text/csv")
                #expect(reply.status == .ok)
                #expect(reply.json["rows"] as? Int == 4)
                #expect(reply.json["imported"] as? Int == 2)
                #expect(reply.json["created"] as? Int == 1 && reply.json["updated"] as? Int == 1)
                #expect(Self.lines(reply) == [4, 5])
                let ada = try await api.call(.get, "/v1/lists/\(list)/subscribers?email=ada@example.com", key: a)
                #expect(ada.json["name"] as? String == "Ada L" && ada.json["last_name"] as? String == "Lovelace")
                #expect((ada.json["attributes"] as? [String: Any])?["Company"] as? String == "Engines, Ltd")
                let old = try await api.call(.get, "/v1/lists/\(list)/subscribers?email=old@example.com", key: a)
                #expect(old.json["name"] as? String == "Old")
                #expect(old.json["status"] as? String == "unsubscribed")  // an import never resubscribes
            }
        }
    }

    @Test func wrongMediaTypeNoEmailColumnAndBadListsWriteNothing() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA
                let list = try await api.call(.post, "/v1/lists", key: a, json: ["name": "csv"]).id
                let before = try await f.counts()
                let good = ByteBuffer(string: "email\nx@example.com\n")
                let cases: [(String, ByteBuffer, String?, HTTPResponse.Status, String)] = [
                    ("/v1/lists/\(list)/import", good, "application/json", .unsupportedMediaType, "text/csv"),
                    ("/v1/lists/\(list)/import", good, nil, .unsupportedMediaType, "got none"),
                    ("/v1/lists/\(list)/import", good, "text/plain", .unsupportedMediaType, "text/csv"),
                    ("/v1/lists/\(list)/import", ByteBuffer(string: "name,city\nAda,London\n"), "text/csv",
                     .unprocessableContent, "no email column"),
                    ("/v1/lists/\(list)/import", ByteBuffer(), "text/csv", .unprocessableContent, "empty"),
                    ("/v1/lists/\(list)/import", ByteBuffer(string: "email,email\na@example.com,b@example.com\n"),
                     "text/csv", .unprocessableContent, "twice"),
                    ("/v1/lists/abc/import", good, "text/csv", .notFound, "list not found"),
                    ("/v1/lists/\(list + 100)/import", good, "text/csv", .notFound, "not found"),
                ]
                for (uri, body, type, status, mention) in cases {
                    let reply = try await api.call(.post, uri, key: a, body: body, contentType: type)
                    #expect(reply.status == status, "\(uri) \(type ?? "-"): \(reply.detail)")
                    #expect(reply.isProblem, "\(uri)")
                    #expect(reply.detail.contains(mention), "\(uri): \(reply.detail)")
                }
                #expect(try await f.counts() == before)
            }
        }
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
