import ArgumentParser
import CampaignStore
import Foundation
import Spool

/// `herald tenant limits NAME [--rate R] [--max-connections N] [--quota N/h] [--daily-quota N]`:
/// shows a database tenant's limits and its use of its quotas, and sets them. Limits
/// are the operator's: the HTTP API lets a tenant read its own (`GET /v1/tenant/limits`)
/// but not change them. Each option given replaces that limit (`none` removes it); the
/// others are kept. Every node applies a change within a few seconds.
struct TenantLimitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "limits",
        abstract: "Show or set a tenant's delivery limits and submission quotas.",
        discussion: """
            --rate and --max-connections limit delivery (messages per time unit, attempts \
            in flight over all destinations); --quota (per hour or per day, e.g. 1000/h) and \
            --daily-quota (per 24 hours) are sliding windows on submission: over them, SMTP \
            answers 452 4.7.1 and the HTTP API 429 with Retry-After. Give `none` to remove a limit.
            """)

    @OptionGroup var database: DatabaseOption
    @Argument(help: "The tenant's name.") var name: String
    @Option(help: "Delivery rate over all destinations, e.g. 50/s, 1000/h; none = unlimited.") var rate: String?
    @Option(help: "Delivery attempts in flight at once; none = unlimited.") var maxConnections: String?
    @Option(help: "Submission quota per hour or per day, e.g. 1000/h; none = no quota.") var quota: String?
    @Option(help: "Submission quota per 24 hours; none = no quota.") var dailyQuota: String?
    @Flag(help: "Print JSON.") var json = false

    private struct Output: Encodable {
        struct Usage: Encodable {
            var window: String
            var limit: Int
            var used: Int
            var remaining: Int
        }
        var tenant: String
        var rate: String?
        var maxConnections: Int?
        var quota: String?
        var dailyQuota: Int?
        var usage: [Usage]
    }

    /// `none` → nil; else `parse`, or a validation error naming the option.
    static func value<T>(_ text: String, _ option: String, _ parse: (String) -> T?) throws -> T? {
        if text.lowercased() == "none" { return nil }
        guard let v = parse(text) else { throw ValidationError("--\(option): not a valid value: \(text)") }
        return v
    }

    func run() async throws {
        let output = try await database.withTenant(named: name) { tenants -> Output? in
            guard let tenant = try await tenants.tenant(named: name) else { return nil }
            let store = TenantLimitsStore(tenants.db)
            var limits = try await store.limits(tenant: tenant.id)
            if let rate { limits.rate = try Self.value(rate, "rate", Rate.init) }
            if let maxConnections { limits.maxConnections = try Self.value(maxConnections, "max-connections") { Int($0) } }
            if let quota { limits.quota = try Self.value(quota, "quota", Rate.init) }
            if let dailyQuota { limits.dailyQuota = try Self.value(dailyQuota, "daily-quota") { Int($0) } }
            if rate != nil || maxConnections != nil || quota != nil || dailyQuota != nil {
                try await store.setLimits(tenant: tenant.id, limits)
            }
            let usage = try await store.usage(tenant: tenant.id, limits: limits)
            return Output(tenant: tenant.name, rate: limits.rate?.text, maxConnections: limits.maxConnections,
                          quota: limits.quota?.text, dailyQuota: limits.dailyQuota,
                          usage: usage.map { .init(window: $0.window.description, limit: $0.window.limit, used: $0.used,
                                                   remaining: $0.remaining) })
        }
        if json {
            try printJSON(output)
            return
        }
        print("tenant: \(output.tenant)")
        print("rate: \(output.rate ?? "none")")
        print("max_connections: \(output.maxConnections.map(String.init) ?? "none")")
        print("quota: \(output.quota ?? "none")")
        print("daily_quota: \(output.dailyQuota.map(String.init) ?? "none")")
        for u in output.usage { print("used: \(u.used) of \(u.window) (\(u.remaining) left)") }
    }
}
