import CampaignStore
import Foundation
import Logging

/// What one ``CampaignScheduler/tick()`` did.
public struct SchedulerTick: Sendable, Equatable {
    /// Campaigns moved to `sending` (and handed to the expander).
    public var started: [Int64] = []
    /// Campaigns whose deadline passed before they could start, now `expired`.
    public var expired: [Int64] = []
}

/// Starts scheduled campaigns when their `send_at` comes, the same way as
/// `POST /v1/campaigns/{id}/send` (``CampaignStore/send(tenant:id:)`` plans the chunks,
/// then ``CampaignExpander/start(campaign:)``), and marks `expired` every scheduled
/// campaign whose deadline passed before it could start (e.g. Herald was down): such a
/// campaign is never sent late. Expiry is checked first on each tick, and a due campaign
/// is only started while its deadline is still ahead.
///
/// Several Herald nodes may run one each: `send` locks the campaign row, so only one of
/// them starts it (the others get a conflict, which is ignored).
public actor CampaignScheduler {
    public let store: CampaignStore
    public let expander: CampaignExpander?
    /// The clock (tests inject one).
    let now: @Sendable () -> Date
    /// Longest sleep between ticks.
    public let interval: Duration
    let logger: Logger

    public init(store: CampaignStore, expander: CampaignExpander?, interval: Duration = .seconds(1),
                now: @escaping @Sendable () -> Date = { Date() },
                logger: Logger = Logger(label: "herald.campaigns.scheduler")) {
        self.store = store
        self.expander = expander
        self.interval = interval
        self.now = now
        self.logger = logger
    }

    /// Ticks until the task is cancelled: every `interval`, or sooner when the next
    /// `send_at`/deadline is closer.
    public func run() async {
        while !Task.isCancelled {
            do {
                _ = try await tick()
            } catch {
                logger.error("campaign scheduler tick failed", metadata: ["error": "\(error)"])
            }
            var wait = interval
            if let next = try? await store.nextScheduledEvent() {
                let seconds = next.timeIntervalSince(now())
                if seconds > 0 && seconds < Double(interval.components.seconds) {
                    wait = .milliseconds(max(10, Int64(seconds * 1000)))
                }
            }
            do { try await Task.sleep(for: wait) } catch { return }
        }
    }

    /// One pass: expire what is overdue, then start what is due.
    public func tick() async throws -> SchedulerTick {
        var report = SchedulerTick()
        let now = self.now()
        report.expired = try await store.expireOverdue(now: now)
        for id in report.expired {
            logger.notice("scheduled campaign expired: its deadline passed before it could start",
                          metadata: ["campaign": "\(id)"])
        }
        for due in try await store.dueCampaigns(now: now) {
            do {
                guard let campaign = try await store.send(tenant: due.tenant, id: due.id),
                      campaign.status == .sending
                else { continue }
                report.started.append(due.id)
                logger.info("scheduled campaign started", metadata: ["campaign": "\(due.id)"])
                await expander?.start(campaign: due.id)
            } catch let error as StoreError where error.kind == .conflict {
                continue  // another node started it, or it was cancelled meanwhile
            } catch let error as StoreError {
                // Cannot be planned (e.g. its lists were emptied of list ids): do not retry forever.
                logger.error("scheduled campaign cannot start", metadata: ["campaign": "\(due.id)",
                                                                         "error": "\(error)"])
                _ = try? await store.db.execute("""
                    UPDATE campaigns SET status = 'draft', updated_at = now() WHERE id = $1 AND status = 'scheduled'
                    """, [String(due.id)])
            }
        }
        return report
    }
}
