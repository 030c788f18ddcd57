import Foundation
import HeraldTestSupport
import Testing

@testable import CampaignStore

@Suite("Lists and subscribers", .enabled(if: PostgresServer.isAvailable))
struct StoreSubscriberTests {
    @Test func listLifecycle() async throws {
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let lists = ListStore(db)
            let news = try await lists.createList(tenant: tenant.id, name: " Newsletter ")
            #expect(news.name == "Newsletter")
            #expect(news.subscriberCount == 0)
            let offers = try await lists.createList(tenant: tenant.id, name: "Offers")
            #expect(try await lists.list(tenant: tenant.id, id: news.id) == news)
            #expect(try await lists.lists(tenant: tenant.id).map(\.id) == [news.id, offers.id])
            #expect(try await lists.lists(tenant: tenant.id, after: news.id).map(\.id) == [offers.id])

            let renamed = try #require(try await lists.renameList(tenant: tenant.id, id: news.id, name: "Weekly"))
            #expect(renamed.name == "Weekly")
            #expect(renamed.updatedAt >= news.updatedAt)
            await #expect { try await lists.renameList(tenant: tenant.id, id: news.id, name: "") } throws: {
                ($0 as? StoreError)?.kind == .invalid
            }

            _ = try await SubscriberStore(db).upsert(tenant: tenant.id, listID: news.id, SubscriberInput(email: "a@example.com"))
            #expect(try await lists.list(tenant: tenant.id, id: news.id)?.subscriberCount == 1)
            #expect(try await lists.deleteList(tenant: tenant.id, id: news.id))
            #expect(try await lists.list(tenant: tenant.id, id: news.id) == nil)
            #expect(try await lists.deleteList(tenant: tenant.id, id: news.id) == false)
            // The subscriber stays with the tenant.
            #expect(try await SubscriberStore(db).subscriber(tenant: tenant.id, email: "a@example.com") != nil)
        }
    }

    @Test func upsertIsIdempotentOnEmail() async throws {
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let list = try await ListStore(db).createList(tenant: tenant.id, name: "main")
            let store = SubscriberStore(db)
            let input = SubscriberInput(email: " Ada@Example.COM ", name: "Ada Lovelace", firstName: "Ada",
                                        attributes: ["plan": "pro", "seats": 3])
            let (first, created) = try #require(try await store.upsert(tenant: tenant.id, listID: list.id, input))
            #expect(created)
            #expect(first.email == "ada@example.com")
            #expect(first.status == .active)
            #expect(first.attributes == ["plan": "pro", "seats": 3])

            let (again, createdAgain) = try #require(try await store.upsert(tenant: tenant.id, listID: list.id, input))
            #expect(!createdAgain)
            #expect(again == first)  // same state, updated_at untouched
            #expect(try await db.query("SELECT count(*) FROM subscribers") == [["1"]])
            #expect(try await db.query("SELECT count(*) FROM list_members") == [["1"]])

            // A partial update merges: nil fields are kept, attributes merge key by key.
            let patch = SubscriberInput(email: "ADA@example.com", lastName: "Lovelace", attributes: ["plan": "team"])
            let (patched, _) = try #require(try await store.upsert(tenant: tenant.id, listID: list.id, patch))
            #expect(patched.id == first.id)
            #expect(patched.firstName == "Ada")
            #expect(patched.lastName == "Lovelace")
            #expect(patched.attributes == ["plan": "team", "seats": 3])
            #expect(patched.updatedAt > first.updatedAt)

            // Status: kept unless given.
            _ = try await store.setStatus(tenant: tenant.id, id: first.id, .unsubscribed)
            let (readded, _) = try #require(try await store.upsert(tenant: tenant.id, listID: list.id,
                                                                   SubscriberInput(email: "ada@example.com")))
            #expect(readded.status == .unsubscribed)
            let (resubscribed, _) = try #require(try await store.upsert(
                tenant: tenant.id, listID: list.id, SubscriberInput(email: "ada@example.com", status: .active)))
            #expect(resubscribed.status == .active)

            await #expect { try await store.upsert(tenant: tenant.id, listID: list.id, SubscriberInput(email: "nope")) }
                throws: { ($0 as? StoreError)?.kind == .invalid }
            #expect(try await store.upsert(tenant: tenant.id, listID: 999_999, SubscriberInput(email: "b@example.com")) == nil)
            #expect(try await store.subscriber(tenant: tenant.id, email: "b@example.com") == nil)
        }
    }

    @Test func findDeleteAndRemove() async throws {
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let a = try await ListStore(db).createList(tenant: tenant.id, name: "a")
            let b = try await ListStore(db).createList(tenant: tenant.id, name: "b")
            let store = SubscriberStore(db)
            let (s, _) = try #require(try await store.upsert(tenant: tenant.id, listID: a.id, SubscriberInput(email: "x@example.org")))
            #expect(try await store.subscriber(tenant: tenant.id, email: "X@EXAMPLE.ORG")?.id == s.id)
            #expect(try await store.subscriber(tenant: tenant.id, email: "x@example.org", listID: a.id)?.id == s.id)
            #expect(try await store.subscriber(tenant: tenant.id, email: "x@example.org", listID: b.id) == nil)
            #expect(try await store.subscriber(tenant: tenant.id, email: "not an address") == nil)
            #expect(try await store.remove(tenant: tenant.id, listID: a.id, subscriberID: s.id))
            #expect(try await store.remove(tenant: tenant.id, listID: a.id, subscriberID: s.id) == false)
            #expect(try await store.subscriber(tenant: tenant.id, id: s.id) != nil)
            #expect(try await store.delete(tenant: tenant.id, id: s.id))
            #expect(try await store.subscriber(tenant: tenant.id, id: s.id) == nil)
            #expect(try await store.delete(tenant: tenant.id, id: s.id) == false)
        }
    }

    /// Tenant B must not see or change anything of tenant A's, by any method: every
    /// foreign id behaves like one that does not exist.
    @Test func tenantIsolation() async throws {
        try await StoreTestDB.with { db in
            let (a, _) = try await StoreTestDB.tenant(db, "tenant-a")
            let (b, _) = try await StoreTestDB.tenant(db, "tenant-b")
            let lists = ListStore(db), subscribers = SubscriberStore(db)
            let listA = try await lists.createList(tenant: a.id, name: "A's list")
            let (subA, _) = try #require(try await subscribers.upsert(
                tenant: a.id, listID: listA.id, SubscriberInput(email: "secret@a.example", name: "Secret")))
            let listB = try await lists.createList(tenant: b.id, name: "B's list")

            // Reads.
            #expect(try await lists.list(tenant: b.id, id: listA.id) == nil)
            #expect(try await lists.lists(tenant: b.id).map(\.id) == [listB.id])
            #expect(try await subscribers.subscriber(tenant: b.id, id: subA.id) == nil)
            #expect(try await subscribers.subscriber(tenant: b.id, email: "secret@a.example") == nil)
            #expect(try await subscribers.subscriber(tenant: b.id, email: "secret@a.example", listID: listA.id) == nil)
            #expect(try await subscribers.subscribers(tenant: b.id, listID: listA.id) == nil)
            #expect(try await subscribers.subscribers(tenant: b.id)?.subscribers == [])
            #expect(try await subscribers.subscribers(tenant: b.id, listID: listB.id)?.subscribers == [])
            // Writes.
            #expect(try await lists.renameList(tenant: b.id, id: listA.id, name: "pwned") == nil)
            #expect(try await lists.deleteList(tenant: b.id, id: listA.id) == false)
            #expect(try await subscribers.setStatus(tenant: b.id, id: subA.id, .unsubscribed) == nil)
            #expect(try await subscribers.delete(tenant: b.id, id: subA.id) == false)
            #expect(try await subscribers.remove(tenant: b.id, listID: listA.id, subscriberID: subA.id) == false)
            #expect(try await subscribers.upsert(tenant: b.id, listID: listA.id, SubscriberInput(email: "secret@a.example")) == nil)
            #expect(try await subscribers.importCSV(tenant: b.id, listID: listA.id,
                                                    from: StoreChunks("email\nsecret@a.example\n")) == nil)
            // The same address under B is B's own subscriber, unrelated to A's.
            let (subB, createdB) = try #require(try await subscribers.upsert(
                tenant: b.id, listID: listB.id, SubscriberInput(email: "secret@a.example", name: "Other")))
            #expect(createdB)
            #expect(subB.id != subA.id)

            // A's data is untouched.
            #expect(try await lists.list(tenant: a.id, id: listA.id)?.name == "A's list")
            #expect(try await lists.list(tenant: a.id, id: listA.id)?.subscriberCount == 1)
            let stillA = try #require(try await subscribers.subscriber(tenant: a.id, id: subA.id))
            #expect(stillA == subA)

            // Deleting B's list and B's subscriber leaves A's memberships alone.
            #expect(try await lists.deleteList(tenant: b.id, id: listB.id))
            #expect(try await subscribers.delete(tenant: b.id, id: subB.id))
            #expect(try await db.query("SELECT tenant_id, list_id, subscriber_id FROM list_members")
                    == [[a.id.description, String(listA.id), String(subA.id)]])
        }
    }

    @Test func paginationCoversEverySubscriberExactlyOnce() async throws {
        try await StoreTestDB.with { db in
            let (tenant, _) = try await StoreTestDB.tenant(db)
            let list = try await ListStore(db).createList(tenant: tenant.id, name: "big")
            let other = try await ListStore(db).createList(tenant: tenant.id, name: "other")
            var csv = "email,name\n"
            for n in 0..<2_345 { csv += "p\(n)@example.net,Person \(n)\n" }
            let store = SubscriberStore(db)
            let report = try #require(try await store.importCSV(tenant: tenant.id, listID: list.id,
                                                                from: StoreChunks(csv, size: 10_000)))
            #expect(report.created == 2_345)
            // Someone on the other list only, and some statuses.
            _ = try await store.upsert(tenant: tenant.id, listID: other.id, SubscriberInput(email: "outsider@example.net"))
            try await db.execute("UPDATE subscribers SET status = 'bounced' WHERE email LIKE 'p%7@example.net'")

            var seen: [Int64] = []
            var cursor: Int64?
            var pages = 0
            repeat {
                let page = try #require(try await store.subscribers(tenant: tenant.id, listID: list.id, after: cursor, limit: 100))
                seen += page.subscribers.map(\.id)
                cursor = page.nextCursor
                pages += 1
                if cursor != nil { #expect(page.subscribers.count == 100) }
            } while cursor != nil
            #expect(pages == 24)
            #expect(seen.count == 2_345)
            #expect(Set(seen).count == 2_345)
            #expect(seen == seen.sorted())

            // With a status filter, across pages of an odd size.
            var bounced: [Subscriber] = []
            cursor = nil
            repeat {
                let page = try #require(try await store.subscribers(tenant: tenant.id, listID: list.id, status: .bounced,
                                                                    after: cursor, limit: 37))
                bounced += page.subscribers
                cursor = page.nextCursor
            } while cursor != nil
            #expect(bounced.count == 234)  // p7, p17, …, p2337: one in ten
            #expect(bounced.allSatisfy { $0.status == .bounced && $0.email.hasSuffix("7@example.net") })

            // The whole tenant, without a list: the outsider too.
            var all = 0
            cursor = nil
            repeat {
                let page = try #require(try await store.subscribers(tenant: tenant.id, after: cursor, limit: 1000))
                all += page.subscribers.count
                cursor = page.nextCursor
            } while cursor != nil
            #expect(all == 2_346)
        }
    }

    @Test func addressRules() throws {
        let good = ["a@example.com", "First.Last+tag@sub.example.co.uk", "o'brien@example.ie", "üser@exämple.de",
                    "x@xn--bcher-kva.example", "a!#$%&'*+/=?^_`{|}~-@example.com"]
        for address in good {
            #expect(throws: Never.self, "\(address)") { try SubscriberAddress.normalize(address).get() }
        }
        let bad = ["", "plain", "@example.com", "a@", "a@localhost", "a..b@example.com", ".a@example.com",
                   "a.@example.com", "a b@example.com", "a@exa mple.com", "a@-example.com", "a@example..com",
                   "a@[127.0.0.1]", "\"quoted\"@example.com", "a@b@example.com", "a@example.123",
                   String(repeating: "x", count: 65) + "@example.com", "a@example.com\r\nBcc: x@y.z"]
        for address in bad {
            #expect(throws: StoreError.self, "\(address)") { try SubscriberAddress.normalize(address).get() }
        }
        #expect(try SubscriberAddress.normalize("  MiXed@Example.COM ").get() == "mixed@example.com")
    }
}
