import CampaignStore
import Foundation
import Hummingbird

/// `/v1/tenant/limits`: the key's own tenant's limits and how much of its quotas it used.
///
/// - `GET` → `{"rate", "max_connections", "quota", "daily_quota", "usage": [{"window",
///   "window_seconds", "limit", "used", "remaining"}]}` (null: no such limit).
/// - `PUT` and `PATCH` → 403: limits are the operator's (`herald tenant limits NAME
///   …`, or ``AdminTenantLimitsV1`` with an admin key); a tenant cannot raise its own.
///
/// Over a quota, every submission route answers 429 with `Retry-After` (seconds) and a
/// problem naming the quota (``Problem/quota(_:now:)``), nothing queued.
public struct TenantLimitsV1: Sendable {
    struct UsageJSON: Encodable {
        var window: String
        var window_seconds: Int
        var limit: Int
        var used: Int
        var remaining: Int
    }

    struct LimitsJSON: Encodable, ResponseEncodable {
        var rate: String?
        var max_connections: Int?
        var quota: String?
        var daily_quota: Int?
        var usage: [UsageJSON]

        enum CodingKeys: String, CodingKey { case rate, max_connections, quota, daily_quota, usage }

        // Limits not set are written as null, not left out.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(rate, forKey: .rate)
            try c.encode(max_connections, forKey: .max_connections)
            try c.encode(quota, forKey: .quota)
            try c.encode(daily_quota, forKey: .daily_quota)
            try c.encode(usage, forKey: .usage)
        }
    }

    let store: TenantLimitsStore

    public init(store: TenantLimitsStore) { self.store = store }

    /// A tenant's limits and its use of its quotas, as both the tenant's and the admin
    /// route show them.
    static func json(_ store: TenantLimitsStore, tenant: TenantID) async throws -> LimitsJSON {
        let limits = try await store.limits(tenant: tenant)
        let usage = try await store.usage(tenant: tenant, limits: limits)
        return LimitsJSON(
            rate: limits.rate?.text, max_connections: limits.maxConnections, quota: limits.quota?.text,
            daily_quota: limits.dailyQuota,
            usage: usage.map {
                UsageJSON(window: $0.window.description, window_seconds: $0.window.seconds, limit: $0.window.limit,
                          used: $0.used, remaining: $0.remaining)
            })
    }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let store = self.store
        group.get("tenant/limits") { _, context -> LimitsJSON in
            try await Self.json(store, tenant: try context.databaseTenant())
        }
        let refuse: @Sendable (Request, HeraldRequestContext) async throws -> Response = { _, context in
            _ = try context.databaseTenant()
            throw Problem(.forbidden, "A tenant's limits are set by the operator (herald tenant limits NAME …, or "
                + "PATCH /v1/admin/tenants/{name}/limits with an admin key); an API key cannot change them.")
        }
        group.put("tenant/limits", use: refuse)
        group.patch("tenant/limits", use: refuse)
    }
}

extension Problem {
    /// A submission over the tenant's quota: 429 with `Retry-After`, or 422 when the
    /// request alone is larger than the quota allows (it never fits as it is).
    static func quota(_ decision: QuotaDecision, now: Date = Date()) -> Problem {
        var extensions: [String: ProblemValue] = [:]
        if let w = decision.window {
            extensions["quota"] = .object(["limit": .int(w.limit), "window_seconds": .int(w.seconds)])
        }
        guard let seconds = decision.retryAfter(now: now) else {
            return Problem(.unprocessableContent, decision.explanation(now: now), extensions: extensions)
        }
        extensions["retry_after"] = .int(seconds)
        return Problem(.tooManyRequests, decision.explanation(now: now), extensions: extensions,
                       headers: [.retryAfter: String(seconds)])
    }
}

extension TenantLimitsStore {
    /// Counts `count` messages of the request's database tenant against its quota, or
    /// throws the 429 (``Problem/quota(_:now:)``). Config-file tenants have no quota.
    /// Returns what to give back if the messages are not queued after all.
    func admit(_ context: HeraldRequestContext, count: Int) async throws -> QuotaDecision? {
        guard let tenant = try? context.databaseTenant() else { return nil }
        let decision = try await reserve(tenant: tenant, count: count)
        guard decision.allowed else { throw Problem.quota(decision) }
        return decision
    }

    /// Gives back the part of an admitted request that was not queued.
    func giveBack(_ decision: QuotaDecision?, _ context: HeraldRequestContext, queued: Int) async {
        guard let decision, decision.counted, let tenant = try? context.databaseTenant(), decision.granted > queued
        else { return }
        do {
            try await release(tenant: tenant, count: decision.granted - queued, minute: decision.minute)
        } catch {
            context.logger.warning("cannot give back a quota count: \(error)")
        }
    }
}
