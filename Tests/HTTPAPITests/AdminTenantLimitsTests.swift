import Foundation
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Spool
import Testing

@testable import Campaigns
@testable import CampaignStore
@testable import HTTPAPI

/// `/v1/admin/tenants/{name}/limits`: the operator sets a database tenant's limits over
/// HTTP with an admin key; the tenant reads them and cannot change them.
@Suite struct AdminTenantLimitsTests {
    static let adminKey = "hk_admin-limits-test-key"

    @Test("an admin key reads and patches a tenant's limits; the tenant sees them; bad values, unknown names and tenant keys are refused")
    func operatorSetsLimits() async throws {
        try await StoreTestDB.with { db in
            let (alpha, issuedA) = try await StoreTestDB.tenant(db, "alpha")
            let (_, issuedB) = try await StoreTestDB.tenant(db, "beta")
            let dir = NSTemporaryDirectory() + "herald-admin-limits-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let spool = try Spool(path: dir)
            let router = HTTPAPI.makeRouter(
                spool: spool, writer: SpoolWriter(spool: spool), verifier: StaticAPIKeys([]), hostname: "herald.test",
                stores: HTTPStores(db), admin: AdminV1(queue: nil, logPath: nil),
                adminKeys: AdminKeys([(name: "ops", sha256: APIKey.hash(Self.adminKey))]))
            try await Application(router: router).test(.router) { client in
                let api = API(client: client)
                let path = "/v1/admin/tenants/alpha/limits"
                let none = try await api.call(.get, path, key: Self.adminKey)
                #expect(none.status == .ok)
                #expect(none.json["rate"] is NSNull && none.json["quota"] is NSNull)

                let set = try await api.call(.patch, path, key: Self.adminKey,
                                             json: ["rate": "50/s", "max_connections": 4, "quota": "1000/h"])
                #expect(set.status == .ok, "\(set.detail)")
                #expect(set.json["rate"] as? String == "50/s")
                #expect(set.json["max_connections"] as? Int == 4)
                #expect(set.json["quota"] as? String == "1000/h")
                #expect((set.json["usage"] as? [[String: Any]])?.first?["limit"] as? Int == 1000)
                let stored = try await TenantLimitsStore(db).limits(tenant: alpha.id)
                #expect(stored.rate?.text == "50/s" && stored.maxConnections == 4 && stored.quota?.text == "1000/h")

                // A key left out is kept, null removes; the name is matched without case.
                let partial = try await api.call(.patch, "/v1/admin/tenants/ALPHA/limits", key: Self.adminKey,
                                                 json: ["rate": NSNull(), "daily_quota": 20000])
                #expect(partial.status == .ok, "\(partial.detail)")
                #expect(partial.json["rate"] is NSNull)
                #expect(partial.json["quota"] as? String == "1000/h")
                #expect(partial.json["daily_quota"] as? Int == 20000)

                // The tenant reads its own, and cannot change them; the other tenant's are its own.
                let own = try await api.call(.get, "/v1/tenant/limits", key: issuedA.key)
                #expect(own.json["daily_quota"] as? Int == 20000)
                let raise = try await api.call(.patch, "/v1/tenant/limits", key: issuedA.key, json: ["quota": "9999999/h"])
                #expect(raise.status == .forbidden)
                let other = try await api.call(.get, "/v1/tenant/limits", key: issuedB.key)
                #expect(other.json["daily_quota"] is NSNull)
                // A tenant key does not open the admin route, for its own tenant either.
                let byTenant = try await api.call(.patch, path, key: issuedA.key, json: ["quota": "9999999/h"])
                #expect(byTenant.status == .forbidden)
                #expect(try await TenantLimitsStore(db).limits(tenant: alpha.id).quota?.text == "1000/h")

                // Bad values: 422 naming the limit; nothing changes.
                for (body, word) in [(["rate": "fast"], "rate"), (["quota": "10/s"], "quota"),
                                     (["max_connections": 0], "max connections")] as [([String: Any], String)] {
                    let bad = try await api.call(.patch, path, key: Self.adminKey, json: body)
                    #expect(bad.status == .unprocessableContent, "\(body): \(bad.status)")
                    #expect(bad.isProblem && bad.detail.contains(word), "\(bad.detail)")
                }
                let unchanged = try await TenantLimitsStore(db).limits(tenant: alpha.id)
                #expect(unchanged.quota?.text == "1000/h" && unchanged.maxConnections == 4 && unchanged.rate == nil)

                let unknown = try await api.call(.get, "/v1/admin/tenants/nobody/limits", key: Self.adminKey)
                #expect(unknown.status == .notFound && unknown.isProblem)
            }
        }
    }
}
