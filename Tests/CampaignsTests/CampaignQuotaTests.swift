import Foundation
import HeraldTestSupport
import Spool
import Testing

@testable import Campaigns
@testable import CampaignStore

/// A campaign larger than its tenant's quota: expansion takes what the quota allows,
/// then waits (the campaign stays `sending`) instead of failing, and goes on when the
/// quota has room again (here: the operator raises it).
@Suite("Campaign expansion and tenant quotas", .serialized, .enabled(if: PostgresServer.isAvailable))
struct CampaignQuotaTests {
    @Test("expansion stops at the quota, waits, and finishes once the quota is raised")
    func expansionWaitsForQuota() async throws {
        try await CampaignFixture.with(count: 400) { f in
            let limits = TenantLimitsStore(f.db)
            try await limits.setLimits(tenant: f.tenant, TenantLimits(quota: Rate("150/h")))
            let campaign = try await f.createCampaign()
            let store = CampaignStore(f.db, chunkSize: 100)
            _ = try #require(try await store.send(tenant: f.tenant, id: campaign.id))
            let expander = f.expander()
            await expander.start(campaign: campaign.id)
            let recorded = "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1"
            let reached = await QuotaPoll.until(timeout: 20) {
                (try? await f.int(recorded, [String(campaign.id)])) == 150
            }
            #expect(reached)
            // It waits: a second later nothing more is expanded, and the campaign is still sending.
            try await Task.sleep(for: .seconds(1.5))
            #expect(try await f.int(recorded, [String(campaign.id)]) == 150)
            #expect(try f.spooled(campaign: campaign.id).count == 150)
            #expect(try await store.stats(tenant: f.tenant, id: campaign.id)?.status == .sending)
            let usage = try await limits.usage(tenant: f.tenant, limits: TenantLimits(quota: Rate("150/h")))
            #expect(usage.first?.used == 150, "only what was queued is counted")

            // The operator raises the quota: expansion goes on within a second and finishes.
            try await limits.setLimits(tenant: f.tenant, TenantLimits(quota: Rate("100000/h")))
            let report = try #require(try await expander.wait(campaign: campaign.id))
            #expect(report.status == .sending)
            #expect(Set(try f.spooled(campaign: campaign.id).map { $0.recipients[0].address }) == f.expected)
            let stats = try #require(try await store.stats(tenant: f.tenant, id: campaign.id))
            #expect(stats.expanded == Int64(f.expected.count) && stats.chunksDone == stats.chunks)
        }
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes (the expander runs on its own).
enum QuotaPoll {
    static func until(timeout: Double, _ condition: () async -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return await condition()
    }
}
