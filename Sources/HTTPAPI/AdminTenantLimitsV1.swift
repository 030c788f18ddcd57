import CampaignStore
import Foundation
import Hummingbird
import Spool

/// `/v1/admin/tenants/{name}/limits`: the operator's side of a database tenant's limits
/// (what `herald tenant limits NAME` does, over HTTP), behind admin keys like the rest of
/// `/v1/admin` (``AdminV1``). The tenant itself reads them at `GET /v1/tenant/limits` and
/// cannot change them.
///
/// - `GET` → the limits and the use of the quotas, as the tenant's route shows them.
/// - `PATCH` with `{"rate", "max_connections", "quota", "daily_quota"}`: each key given
///   replaces that limit, `null` removes it, a key left out keeps it. Every node applies
///   a change within a few seconds (its tenant directory re-reads the limits).
///
/// A name no database tenant has is a 404; a value out of range a 422 naming it.
struct AdminTenantLimitsV1: Sendable {
    struct PatchJSON: Decodable {
        var rate: String??
        var max_connections: Int??
        var quota: String??
        var daily_quota: Int??

        enum CodingKeys: String, CodingKey { case rate, max_connections, quota, daily_quota }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            rate = try c.decodePatch(String.self, forKey: .rate)
            max_connections = try c.decodePatch(Int.self, forKey: .max_connections)
            quota = try c.decodePatch(String.self, forKey: .quota)
            daily_quota = try c.decodePatch(Int.self, forKey: .daily_quota)
        }

        /// `limits` with this patch applied.
        func applied(to limits: TenantLimits) throws -> TenantLimits {
            func rate(_ text: String?, _ key: String, example: String) throws -> Rate? {
                guard let text else { return nil }
                guard let r = Rate(text) else {
                    throw Problem.unprocessable("\(key): \"\(text)\" is not a rate; give a count per unit, e.g. \(example)")
                }
                return r
            }
            var l = limits
            if let r = self.rate { l.rate = try rate(r, "rate", example: "50/s") }
            if let c = max_connections { l.maxConnections = c }
            if let q = quota { l.quota = try rate(q, "quota", example: "1000/h") }
            if let d = daily_quota { l.dailyQuota = d }
            return l
        }
    }

    let tenants: TenantStore
    let limits: TenantLimitsStore

    func add(to admin: RouterGroup<HeraldRequestContext>) {
        let tenants = self.tenants, limits = self.limits
        @Sendable func tenant(_ context: HeraldRequestContext) async throws -> Tenant {
            let name = context.parameters.get("name") ?? ""
            guard let tenant = try await tenants.tenant(named: name) else {
                throw Problem(.notFound, "No tenant is named \"\(name)\".")
            }
            return tenant
        }
        admin.get("tenants/:name/limits") { _, context -> TenantLimitsV1.LimitsJSON in
            try await TenantLimitsV1.json(limits, tenant: try await tenant(context).id)
        }
        admin.patch("tenants/:name/limits") { request, context -> TenantLimitsV1.LimitsJSON in
            let found = try await tenant(context)
            let patch = try await APIInput.decode(PatchJSON.self, from: request, tooLarge: "a limits object is small")
            let current = try await limits.limits(tenant: found.id)
            let changed = try patch.applied(to: current)
            try await APIInput.store { try await limits.setLimits(tenant: found.id, changed) }
            context.logger.notice("tenant limits changed over the admin API", metadata: [
                "tenant": "\(found.name)", "rate": "\(changed.rate?.text ?? "none")",
                "max_connections": "\(changed.maxConnections.map(String.init) ?? "none")",
                "quota": "\(changed.quota?.text ?? "none")",
                "daily_quota": "\(changed.dailyQuota.map(String.init) ?? "none")",
            ])
            return try await TenantLimitsV1.json(limits, tenant: found.id)
        }
    }
}
