import CampaignStore
import Foundation
import Postgres
import Spool

/// What pause, resume and cancel do to a campaign's messages already in the spool.
///
/// The campaign's messages are the `campaign_recipients.queue_id`s (written by the
/// expander after each chunk's spool commit). A message already delivered (or bounced)
/// is gone from the spool: its id is simply not found, which is fine.
/// - ``hold(campaign:)`` (pause): `queue/` → `hold/`; the queue manager drops a message
///   that left `queue/` (and does not deliver it while held).
/// - ``release(campaign:)`` (resume): `hold/` → `queue/`, and tells the queue manager
///   (the writer's commit hook) so delivery starts at once.
/// - ``remove(campaign:)`` (cancel): deletes them from `queue/` and `hold/`.
public struct CampaignSpoolActions: Sendable {
    public let db: PostgresClient
    public let writer: SpoolWriter
    /// Spool operations in flight at once.
    public let concurrency: Int

    public var spool: Spool { writer.spool }

    public init(db: PostgresClient, writer: SpoolWriter, concurrency: Int = 16) {
        self.db = db
        self.writer = writer
        self.concurrency = max(1, concurrency)
    }

    /// Messages moved or removed, and ids that were not where they were looked for
    /// (delivered already, or never committed).
    public struct Outcome: Sendable, Equatable {
        public var done = 0
        public var missing = 0
    }

    public func hold(campaign id: Int64) async throws -> Outcome {
        try await each(campaign: id) { spool, queueID in
            guard spool.locate(queueID) == .queue else { return false }
            try spool.move(queueID, from: .queue, to: .hold)
            return true
        }
    }

    public func release(campaign id: Int64) async throws -> Outcome {
        let writer = self.writer
        return try await each(campaign: id, after: { queueID in
            if let envelope = try? writer.spool.loadEnvelope(queueID, in: .queue) { await writer.onCommit(envelope) }
        }) { spool, queueID in
            guard spool.locate(queueID) == .hold else { return false }
            try spool.move(queueID, from: .hold, to: .queue)
            return true
        }
    }

    public func remove(campaign id: Int64) async throws -> Outcome {
        try await each(campaign: id) { spool, queueID in
            var removed = false
            for queue in [SpoolQueue.queue, .hold] where spool.locate(queueID) == queue {
                do {
                    try spool.remove(queueID, from: queue)
                    removed = true
                } catch let error as SpoolError where error.isNotFound {
                    continue  // delivered meanwhile
                }
            }
            return removed
        }
    }

    /// Runs `action` (on the spool's I/O threads) for each queue id of the campaign,
    /// `concurrency` at a time; `after` runs for each id the action reported done.
    private func each(campaign id: Int64, after: (@Sendable (QueueID) async -> Void)? = nil,
                      _ action: @escaping @Sendable (Spool, QueueID) throws -> Bool) async throws -> Outcome {
        var ids: [QueueID] = []
        for try await row in db.stream("""
            SELECT queue_id FROM campaign_recipients WHERE campaign_id = $1 AND queue_id IS NOT NULL
            ORDER BY subscriber_id
            """, [String(id)]) {
            if let text = row[0], let queueID = QueueID(text) { ids.append(queueID) }
        }
        var outcome = Outcome()
        let spool = self.spool
        let concurrency = self.concurrency
        var failure: (any Error)?
        await withThrowingTaskGroup(of: Bool.self) { group in
            var next = 0
            func submit() {
                guard next < ids.count else { return }
                let queueID = ids[next]
                next += 1
                group.addTask {
                    let done = try await spool.offload { spool in try action(spool, queueID) }
                    if done, let after { await after(queueID) }
                    return done
                }
            }
            for _ in 0..<min(concurrency, ids.count) { submit() }
            while true {
                do {
                    guard let done = try await group.next() else { break }
                    if done { outcome.done += 1 } else { outcome.missing += 1 }
                } catch {
                    failure = failure ?? error
                }
                if failure == nil { submit() }
            }
        }
        if let failure { throw failure }
        return outcome
    }

    // MARK: - Hooks of the pause/resume/cancel routes (after the status change)

    /// Waits for the expander's chunk in hand (its messages are recorded when it ends,
    /// and the run stops there as the campaign is no longer `sending`), then holds.
    public static func afterPause(campaign id: Int64, expander: CampaignExpander?) async throws(CampaignSpoolError) {
        guard let expander else { return }
        _ = try? await expander.wait(campaign: id)
        try await wrap("paused", "held", id) {
            try await CampaignSpoolActions(db: expander.db, writer: expander.writer).hold(campaign: id)
        }
    }

    /// Releases the held messages (before the route restarts expansion).
    public static func afterResume(campaign id: Int64, expander: CampaignExpander?) async throws(CampaignSpoolError) {
        guard let expander else { return }
        try await wrap("resumed", "released", id) {
            try await CampaignSpoolActions(db: expander.db, writer: expander.writer).release(campaign: id)
        }
    }

    /// Waits for the chunk in hand, then deletes what is undelivered.
    public static func afterCancel(campaign id: Int64, expander: CampaignExpander?) async throws(CampaignSpoolError) {
        guard let expander else { return }
        _ = try? await expander.wait(campaign: id)
        try await wrap("cancelled", "deleted", id) {
            try await CampaignSpoolActions(db: expander.db, writer: expander.writer).remove(campaign: id)
        }
    }

    private static func wrap(_ status: String, _ verb: String, _ id: Int64,
                             _ body: () async throws -> Outcome) async throws(CampaignSpoolError) {
        do {
            _ = try await body()
        } catch {
            throw CampaignSpoolError(campaign: id, status: status, verb: verb, underlying: error)
        }
    }
}

/// A pause, resume or cancel whose status change is recorded but whose spool action
/// (hold, release, delete) did not finish for every message.
public struct CampaignSpoolError: Error, CustomStringConvertible {
    public var campaign: Int64
    /// The status the campaign now has: `paused`, `resumed`, `cancelled`.
    public var status: String
    /// What was to happen to its messages: `held`, `released`, `deleted`.
    public var verb: String
    /// The spool or database error that stopped it.
    public var underlying: any Error

    /// What happened, without the underlying error (which is for the log).
    public var message: String {
        "Campaign \(campaign) is \(status), but its messages in the spool could not all be \(verb)"
    }

    public var description: String { "\(message): \(underlying)" }
}
