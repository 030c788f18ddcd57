import Foundation
import HeraldTestSupport
import Spool
import Testing

@testable import CampaignStore

/// Tenant limits and the sliding-window quota counters, on a real PostgreSQL, with
/// hand-picked times (counts are per minute; a window of W seconds holds W/60 minutes).
@Suite("Tenant limits and quotas", .enabled(if: PostgresServer.isAvailable))
struct StoreTenantLimitsTests {
    /// A minute boundary, so that `t0 + n × 60` is minute n exactly.
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000 - 1_800_000_000.truncatingRemainder(dividingBy: 60))
    static func at(minutes: Double) -> Date { t0.addingTimeInterval(minutes * 60) }

    @Test("limits are stored, read back, replaced and checked")
    func limitsRoundTrip() async throws {
        try await StoreTestDB.with { db in
            let (a, _) = try await StoreTestDB.tenant(db, "alpha")
            let (b, _) = try await StoreTestDB.tenant(db, "beta")
            let store = TenantLimitsStore(db)
            #expect(try await store.limits(tenant: a.id).isEmpty)
            let limits = TenantLimits(rate: Rate("50/s"), maxConnections: 4, quota: Rate("1000/h"), dailyQuota: 5000)
            try await store.setLimits(tenant: a.id, limits)
            #expect(try await store.limits(tenant: a.id) == limits)
            #expect(try await store.limits(tenant: b.id).isEmpty, "another tenant's limits are its own")
            try await store.setLimits(tenant: a.id, TenantLimits(quota: Rate("10/d")))
            #expect(try await store.limits(tenant: a.id) == TenantLimits(quota: Rate("10/d")))
            let all = try await store.all()
            #expect(all.map(\.name) == ["alpha", "beta"])
            #expect(all[0].limits.quotaWindows == [QuotaWindow(limit: 10, seconds: 86400)])
            for bad in [TenantLimits(maxConnections: 0), TenantLimits(quota: Rate("10/m")), TenantLimits(quota: Rate("1.5/h")),
                        TenantLimits(dailyQuota: 0)] {
                await #expect { try await store.setLimits(tenant: a.id, bad) } throws: {
                    ($0 as? StoreError)?.kind == .invalid
                }
            }
        }
    }

    @Test("a sliding window: refused when full, with the time the oldest minute leaves it; room again then")
    func slidingWindow() async throws {
        try await StoreTestDB.with { db in
            let (a, _) = try await StoreTestDB.tenant(db, "alpha")
            let store = TenantLimitsStore(db)
            try await store.setLimits(tenant: a.id, TenantLimits(quota: Rate("5/h")))
            #expect(try await store.reserve(tenant: a.id, count: 2, now: Self.at(minutes: 0)).allowed)
            #expect(try await store.reserve(tenant: a.id, count: 3, now: Self.at(minutes: 10)).allowed)
            let refused = try await store.reserve(tenant: a.id, count: 1, now: Self.at(minutes: 20))
            #expect(!refused.allowed && refused.granted == 0)
            #expect(refused.window == QuotaWindow(limit: 5, seconds: 3600))
            // The two of minute 0 leave the window an hour later: one message fits then.
            #expect(refused.retryAt == Self.at(minutes: 60))
            #expect(refused.retryAfter(now: Self.at(minutes: 20)) == 2400)
            #expect(refused.explanation(now: Self.at(minutes: 20))
                == "the tenant's quota of 5 messages per hour is used up; try again in 2400 seconds")
            // Three at once need minute 10's three to leave as well.
            #expect(try await store.reserve(tenant: a.id, count: 3, now: Self.at(minutes: 20)).retryAt == Self.at(minutes: 70))
            #expect(try await store.reserve(tenant: a.id, count: 1, now: Self.at(minutes: 59.9)).allowed == false)
            #expect(try await store.reserve(tenant: a.id, count: 2, now: Self.at(minutes: 60)).allowed)
            let usage = try await store.usage(tenant: a.id, limits: try await store.limits(tenant: a.id), now: Self.at(minutes: 60))
            #expect(usage == [QuotaUsage(window: QuotaWindow(limit: 5, seconds: 3600), used: 5)])
            // A request larger than the whole quota never fits.
            let never = try await store.reserve(tenant: a.id, count: 6, now: Self.at(minutes: 200))
            #expect(!never.allowed && never.retryAt == nil)
        }
    }

    @Test("partial grants (campaign expansion), dry runs, giving back, and both windows at once")
    func partialDryRunReleaseAndDaily() async throws {
        try await StoreTestDB.with { db in
            let (a, _) = try await StoreTestDB.tenant(db, "alpha")
            let (b, _) = try await StoreTestDB.tenant(db, "beta")
            let store = TenantLimitsStore(db)
            try await store.setLimits(tenant: a.id, TenantLimits(quota: Rate("10/h"), dailyQuota: 12))
            let part = try await store.reserve(tenant: a.id, count: 25, partial: true, now: Self.at(minutes: 0))
            #expect(part.granted == 10 && part.counted)
            let dry = try await store.reserve(tenant: a.id, count: 1, partial: true, dryRun: true, now: Self.at(minutes: 1))
            #expect(dry.granted == 0 && !dry.counted && dry.retryAt == Self.at(minutes: 60))
            // Four of the ten were not queued after all: given back.
            try await store.release(tenant: a.id, count: 4, minute: part.minute)
            #expect(try await store.reserve(tenant: a.id, count: 4, now: Self.at(minutes: 2)).allowed)
            // An hour on, the hourly window is empty but the daily one holds 10 of 12.
            let daily = try await store.reserve(tenant: a.id, count: 3, now: Self.at(minutes: 61))
            #expect(!daily.allowed && daily.window == QuotaWindow(limit: 12, seconds: 86400))
            #expect(daily.retryAt == Self.at(minutes: 1440))
            #expect(try await store.reserve(tenant: a.id, count: 2, now: Self.at(minutes: 61)).allowed)
            // Tenant B has no quota: everything is granted and nothing counted.
            let free = try await store.reserve(tenant: b.id, count: 1000, now: Self.at(minutes: 61))
            #expect(free.allowed && !free.counted)
            #expect(try await db.query("SELECT count(*) FROM tenant_usage WHERE tenant_id = $1", [b.id.parameter])[0][0] == "0")
            // Counts older than a day are pruned.
            try await store.prune(now: Self.at(minutes: 1441))
            #expect(try await db.query("SELECT min(minute) FROM tenant_usage")[0][0] == String(TenantLimitsStore.minute(Self.at(minutes: 2))))
        }
    }

    @Test("concurrent reservations never overshoot the quota together")
    func concurrentReservations() async throws {
        try await StoreTestDB.with(size: 8) { db in
            let (a, _) = try await StoreTestDB.tenant(db, "alpha")
            let store = TenantLimitsStore(db)
            try await store.setLimits(tenant: a.id, TenantLimits(quota: Rate("30/h")))
            let granted = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<50 {
                    group.addTask { try await store.reserve(tenant: a.id, count: 1, now: Self.at(minutes: 0)).granted }
                }
                return try await group.reduce(0, +)
            }
            #expect(granted == 30)
        }
    }
}
