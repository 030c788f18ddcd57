import Delivery
import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Spool

/// Where one node carries out what the campaign store decided about campaigns' mail
/// already in its spool: the queue manager when the node delivers, the spool's
/// held-campaigns file alone when it only accepts and queues.
public protocol CampaignMailControl: Sendable {
    /// Campaign tags of the mail this node has queued or holds.
    func campaignTags() async -> Set<String>
    /// `held` becomes the set of campaigns whose mail waits; the queued mail of each
    /// campaign in `cancelled` is removed. Returns how many messages were removed.
    func controlCampaigns(held: Set<String>, cancelled: Set<String>) async throws -> Int
}

extension QueueManager: CampaignMailControl {
    public func controlCampaigns(held: Set<String>, cancelled: Set<String>) async throws -> Int {
        let report: CampaignControlReport = try await controlCampaigns(held: held, cancelled: cancelled)
        return report.removed
    }
}

/// A node that does not deliver: it records which campaigns are held, so that the
/// queue manager of a later start holds them from its first moment. Cancelled mail is
/// removed by that queue manager's first control pass (it has the per-campaign index).
public struct SpoolHeldCampaigns: CampaignMailControl {
    public let spool: Spool

    public init(spool: Spool) { self.spool = spool }

    public func campaignTags() async -> Set<String> { (try? spool.heldCampaigns()) ?? [] }

    public func controlCampaigns(held: Set<String>, cancelled: Set<String>) async throws -> Int {
        let spool = self.spool
        try await spool.offload { spool in
            if try spool.heldCampaigns() != held { try spool.setHeldCampaigns(held) }
        }
        return 0
    }
}

/// Keeps one node's spool in step with the campaigns' statuses in the store, so that
/// pause, resume and cancel reach mail on every node, however paced, deferred or
/// waiting for a window it is:
/// - `paused` campaigns are held: their messages stay in `queue/` and are not
///   attempted; `resume` (status `sending` again) releases them with their pacing;
/// - `cancelled` campaigns' messages are deleted, their waiting recipients reported
///   `cancelled` (the stats recorder records them).
///
/// A pass asks the store for every paused campaign and for the status of each campaign
/// this node has mail of, then hands the answer to ``CampaignMailControl``. Passes run
/// at start-up (before any delivery: ``start()``), every ``interval``, and at once on
/// ``reconcile()`` after a status change made through this node's API. A node that was
/// down during a pause or cancel applies it on its first pass; until its store answers,
/// it holds what its spool's held-campaigns file lists.
public actor CampaignControl: Service {
    public let db: PostgresClient
    public let mail: any CampaignMailControl
    public let interval: Duration
    let logger: Logger
    /// Passes made and messages removed (tests, logs).
    public private(set) var passes = 0
    public private(set) var removed = 0

    public init(db: PostgresClient, mail: any CampaignMailControl, interval: Duration = .seconds(1),
                logger: Logger = Logger(label: "herald.campaigns.control")) {
        self.db = db
        self.mail = mail
        self.interval = interval
        self.logger = logger
    }

    /// One pass (see the type's comment). Passes never overlap: the actor runs one at a time.
    public func reconcile() async throws {
        let tags = await mail.campaignTags()
        let local = tags.compactMap { Int64($0) }
        var held = Set<String>()
        var cancelled = Set<String>()
        for row in try await db.query("""
            SELECT id, status FROM campaigns WHERE status = 'paused' OR (id = ANY ($1::bigint[]) AND status = 'cancelled')
            """, [PGText.array(local)]) {
            let id = try PGText.require(row, 0, PGText.int64)
            if row[1] == "paused" { held.insert(String(id)) } else { cancelled.insert(String(id)) }
        }
        let count = try await mail.controlCampaigns(held: held, cancelled: cancelled)
        passes += 1
        removed += count
    }

    /// The first pass, logged rather than thrown when the store does not answer.
    public func start() async {
        do {
            try await reconcile()
        } catch {
            logger.error("campaign control: first pass failed; holding what the spool lists",
                         metadata: ["error": "\(error)"])
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: self.interval) } catch { return }
                do {
                    try await self.reconcile()
                } catch {
                    self.logger.error("campaign control pass failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
