import Foundation
import Testing

@testable import Campaigns
@testable import CampaignStore

/// The estimated completion of a campaign from its send rate and window, with a fixed
/// clock (no database).
@Suite struct CampaignProgressTests {
    /// 2026-01-15 (a Thursday) 16:00 UTC.
    static let now = Date(timeIntervalSince1970: 1_768_492_800)

    static func stats(status: CampaignStatus = .sending, total: Int64 = 2000, sent: Int64 = 0, rate: String?,
                      window: CampaignSendWindow? = nil) -> CampaignStats {
        CampaignStats(status: status, total: total, expanded: total, skipped: 0, sent: sent, deferred: 0, bounced: 0,
                      failed: 0, unsubscribed: 0, cancelled: 0, held: 0, chunks: 2, chunksDone: 2, sendRate: rate,
                      sendWindow: window, timeZone: "UTC", startedAt: now, finishedAt: nil)
    }

    @Test("2,000 at 10/m take 3 h 20 min, not what the last minute's outcomes suggest")
    func rateAlone() throws {
        let eta = try #require(CampaignProgress.estimatedCompletion(Self.stats(rate: "10/m"), observedPerMinute: 1,
                                                                    now: Self.now))
        #expect(eta.timeIntervalSince(Self.now) == 200 * 60)
    }

    @Test("with a window only its open hours count")
    func rateAndWindow() throws {
        // Open 09:00-17:00 UTC: one hour left today (600 at 10/m), the other 1,400 take
        // 2 h 20 min from tomorrow's opening.
        let window = CampaignSendWindow(start: "09:00", end: "17:00", timeZone: "UTC", days: nil, recipientTimeZone: false)
        let eta = try #require(CampaignProgress.estimatedCompletion(Self.stats(rate: "10/m", window: window),
                                                                    observedPerMinute: 0, now: Self.now))
        let tomorrowNine = Self.now.addingTimeInterval(17 * 3600)
        #expect(eta == tomorrowNine.addingTimeInterval(140 * 60))
    }

    @Test("absent rather than wrong: paused, done, per-recipient zones, no pace known")
    func absentWhenUnknown() {
        let perRecipient = CampaignSendWindow(start: "09:00", end: "17:00", timeZone: nil, days: nil,
                                              recipientTimeZone: true)
        #expect(CampaignProgress.estimatedCompletion(Self.stats(status: .paused, rate: "10/m"), observedPerMinute: 5,
                                                     now: Self.now) == nil)
        #expect(CampaignProgress.estimatedCompletion(Self.stats(sent: 2000, rate: "10/m"), observedPerMinute: 5,
                                                     now: Self.now) == nil)
        #expect(CampaignProgress.estimatedCompletion(Self.stats(rate: "10/m", window: perRecipient),
                                                     observedPerMinute: 5, now: Self.now) == nil)
        #expect(CampaignProgress.estimatedCompletion(Self.stats(rate: nil), observedPerMinute: 0, now: Self.now) == nil)
        let observed = CampaignProgress.estimatedCompletion(Self.stats(rate: nil), observedPerMinute: 100, now: Self.now)
        #expect(observed == Self.now.addingTimeInterval(20 * 60))
    }
}
