import CampaignStore
import Delivery
import Foundation
import Logging
import Postgres
import Spool

/// One recipient outcome as the stats recorder takes it: Delivery's event itself (the
/// queue manager reports every recipient outcome, including cancellations and postmaster
/// deletions). A DSN Herald sends keeps the original's campaign tag but is not one of its
/// recipients: the recorder ignores it.
public typealias CampaignDeliveryOutcome = DeliveryOutcomeEvent

extension DeliveryOutcomeEvent {
    /// A permanent failure: enhanced status class 5, or a 5xx reply without one.
    public var isPermanentFailure: Bool {
        guard result == .failed else { return false }
        if let enhanced { return enhanced.hasPrefix("5.") }
        return (500..<600).contains(code ?? 0)
    }

    /// The `campaign_recipients.state` this outcome puts the recipient in.
    var recipientState: String {
        switch result {
        case .delivered: return "sent"
        case .deferred: return "deferred"
        case .failed: return isPermanentFailure ? "bounced" : "failed"
        case .expired: return "failed"
        case .cancelled, .deleted: return "cancelled"
        case .held: return "held"
        case .released: return wasDeferred ? "deferred" : "queued"
        }
    }

    /// What `failures` shows as the reason.
    var reason: String {
        if let reply, !reply.isEmpty { return String(reply.prefix(1000)) }
        let parts = [code.map(String.init), enhanced].compactMap { $0 }
        return parts.isEmpty ? result.rawValue : parts.joined(separator: " ")
    }

    /// A hard bounce: a permanent failure about the address itself, enhanced status
    /// 5.1.x (bad mailbox / domain address) or 5.2.x (mailbox status). The subscriber
    /// is marked `bounced` and the address suppressed. Without an enhanced status a
    /// bare 5xx is not taken as a hard bounce (it could be a policy or content refusal).
    public var isHardBounce: Bool {
        guard result == .failed, let enhanced else { return false }
        return enhanced.hasPrefix("5.1.") || enhanced.hasPrefix("5.2.")
    }

    /// A hard bounce by the `[bounce]` classification table (``BounceClassifier``), the
    /// one that classifies reports arriving later: so `552 5.2.2 mailbox full` is soft
    /// here too, and `550 5.7.1 … user unknown` hard.
    public func isHardBounce(by classifier: BounceClassifier?) -> Bool {
        guard let classifier else { return isHardBounce }
        guard result == .failed, isPermanentFailure else { return false }
        return classifier.classify(status: enhanced, text: reply ?? "").hard
    }
}

/// Turns delivery outcomes into per-campaign counters (`campaign_counters`).
///
/// ``record(_:)`` is synchronous and cheap (the queue manager calls it for every
/// recipient outcome): it appends to a buffer. The buffer is written at most once per
/// ``interval`` (the first event into an empty buffer schedules a write that many
/// seconds later), and by ``flush()`` / ``shutdown()``. Each write is ONE transaction
/// for the whole batch, whatever its size, and writes never overlap.
///
/// Only outcomes of the campaign's own recipients count: the event's queue id must be
/// the one recorded for that recipient in `campaign_recipients` (the subscriber id is
/// decoded from the deterministic queue id). So a test-send's outcome, a previous
/// round's late outcome, or tags naming another tenant's campaign change nothing.
/// Counters follow the recipient rows (events of messages without a campaign tag, or
/// with tags that are not numbers, are ignored; so are DSNs Herald itself sends). Each
/// outcome sets the recipient's `campaign_recipients.state` (``recipientState``:
/// delivered -> `sent`; failed with a permanent status, 5.x.x or a bare 5xx ->
/// `bounced`; any other failure and `expired` -> `failed`; `deferred`; cancelled or
/// deleted -> `cancelled`; held by the postmaster -> `held`; released -> `queued`, or
/// `deferred` again when it had been), and every row whose state changed leaves the counter of its
/// old state and joins the one of its new state (``deltas(_:)``). So `deferred` counts
/// the recipients deferred *now* (five deferrals count once; a later delivery takes it
/// back), a replayed outcome changes nothing, and the counters add up to the rows in
/// whatever order outcomes arrive. A row that reached `sent`, `bounced` or `failed`
/// keeps it: its message is gone from the spool, so a later outcome for its queue id is
/// a replay of the delivery log after a restart, which must not undo what the bounce
/// intake (``BounceStore``) recorded since (`sent` → `bounced`).
/// - a hard bounce (``CampaignDeliveryOutcome/isHardBounce(by:)``: by the `[bounce]`
///   classification table when there is one, else 5.1.x and 5.2.x) also marks the tenant's
///   subscriber with that address `bounced` (from `active` or `unsubscribed`; a
///   `complained` one keeps its status) and suppresses the address for the tenant with
///   reason `bounced` (an existing suppression is kept), in the same transaction.
///
/// Per recipient, the same transaction records the outcome in `campaign_recipients`
/// (`state` sent / deferred / bounced / failed and the reply as `reason`), which
/// `failures` lists and `retry-failed` re-queues. A message can be delivered before
/// its chunk's checkpoint has written the row: an outcome that finds no row is kept
/// and tried again with the next writes (at least every ``interval``) for
/// ``unmatchedRetention``, then dropped (a test-send's outcomes end that way).
///
/// When a write fails (database down) the batch goes back to the front of the buffer
/// and is retried after ``interval``; beyond ``maxBuffered`` events the oldest are
/// dropped (and logged).
///
/// Current rate and estimated completion: ``progress(_:campaign:now:)`` — the rate is
/// what *this process* recorded as delivered/bounced/failed in the last minute (an
/// in-memory window; with several Herald nodes each sees its own share).
public actor CampaignStatsRecorder {
    public let db: PostgresClient
    public let interval: Duration
    public let maxBuffered: Int
    let logger: Logger

    /// The events not yet written, behind a lock so that `record` need not hop onto
    /// the actor.
    final class Buffer: @unchecked Sendable {
        private let lock = NSLock()
        private var events: [CampaignDeliveryOutcome] = []
        private var scheduled = false
        private(set) var closed = false

        /// Appends; true when the caller must schedule a write.
        func append(_ event: CampaignDeliveryOutcome) -> Bool {
            lock.withLock {
                guard !closed else { return false }
                events.append(event)
                if scheduled { return false }
                scheduled = true
                return true
            }
        }

        func takeAll() -> [CampaignDeliveryOutcome] {
            lock.withLock {
                scheduled = false
                defer { events.removeAll(keepingCapacity: true) }
                return events
            }
        }

        /// Puts a failed batch back in front; returns (schedule a retry, dropped).
        func putBack(_ batch: [CampaignDeliveryOutcome], limit: Int) -> (Bool, Int) {
            lock.withLock {
                events = batch + events
                var dropped = 0
                if events.count > limit {
                    dropped = events.count - limit
                    events.removeFirst(dropped)
                }
                guard !closed, !scheduled, !events.isEmpty else { return (false, dropped) }
                scheduled = true
                return (true, dropped)
            }
        }

        func close() { lock.withLock { closed = true } }
    }

    nonisolated let buffer = Buffer()
    private var tail: Task<Void, Never>?
    /// Recipient outcomes that found no `campaign_recipients` row yet, with when first seen.
    private var unmatched: [(event: CampaignDeliveryOutcome, since: Date)] = []
    /// How long an outcome waits for its recipient's row (see the type's comment).
    public var unmatchedRetention: TimeInterval = 120
    private var unmatchedRetryScheduled = false

    private func retryUnmatched() async {
        unmatchedRetryScheduled = false
        await flush()
    }
    /// Per campaign: (second, outcomes) of the last minute, for the rate.
    private var recent: [Int64: [(second: Int64, count: Int)]] = [:]
    /// Where the time of the newest outcome written is kept (nil: nowhere), so that a
    /// restart after a crash replays the delivery log from there (``replay(logPath:)``).
    private var checkpointPath: String?
    private var checkpoint: Date?
    /// Batches written and events counted (tests, logs).
    public private(set) var batchesWritten = 0
    public private(set) var eventsWritten = 0

    /// Decides which failures are hard bounces (`[bounce]`); nil: 5.1.x and 5.2.x are.
    public let classifier: BounceClassifier?

    public init(db: PostgresClient, interval: Duration = .seconds(1), maxBuffered: Int = 1_000_000,
                classifier: BounceClassifier? = nil, logger: Logger = Logger(label: "herald.campaigns.stats")) {
        self.db = db
        self.classifier = classifier
        self.interval = interval
        self.maxBuffered = max(1, maxBuffered)
        self.logger = logger
    }

    /// Buffers one outcome (non-blocking; safe from any thread or actor).
    public nonisolated func record(_ event: CampaignDeliveryOutcome) {
        guard event.campaign != nil, !event.isBounceMessage else { return }
        if buffer.append(event) { scheduleWrite() }
    }

    private nonisolated func scheduleWrite() {
        let interval = self.interval
        Task {
            try? await Task.sleep(for: interval)
            await self.flush()
        }
    }

    /// Writes everything buffered now (after any write in progress) and returns when
    /// it is written.
    public func flush() async {
        let events = buffer.takeAll()
        let previous = tail
        let task = Task {
            await previous?.value
            await self.write(events)
        }
        tail = task
        await task.value
    }

    /// Takes no more events and writes what is buffered.
    public func shutdown() async {
        buffer.close()
        await flush()
    }

    // MARK: - Writing

    struct Key: Hashable {
        var tenant: Int64
        var campaign: Int64
    }

    /// Counter changes of one campaign.
    struct Deltas: Equatable {
        var sent: Int64 = 0
        var deferred: Int64 = 0
        var bounced: Int64 = 0
        var failed: Int64 = 0
        var cancelled: Int64 = 0
        var held: Int64 = 0
        /// Recipients whose delivery ended (sent, bounced or failed): the rate. A
        /// cancellation or a skip is not a delivery and does not count.
        var finished: Int = 0
    }

    /// The counter each `campaign_recipients.state` is counted in (`queued` and
    /// `pending` are in none: they are what remains).
    static func counter(_ state: String) -> WritableKeyPath<Deltas, Int64>? {
        switch state {
        case "sent": return \.sent
        case "deferred": return \.deferred
        case "bounced": return \.bounced
        case "failed": return \.failed
        case "cancelled": return \.cancelled
        case "held": return \.held
        default: return nil
        }
    }

    static func isFinal(_ state: String) -> Bool {
        isDelivery(state) || state == "cancelled" || state == "skipped"
    }

    /// A final state an attempt reached (what the rate counts).
    static func isDelivery(_ state: String) -> Bool {
        state == "sent" || state == "bounced" || state == "failed"
    }

    /// One recipient row's change of state, as the update returned it.
    struct Transition: Equatable {
        var key: Key
        var old: String
        var new: String
        /// `[campaign, subscriber]`.
        var recipient: [Int64] = []
    }

    /// The counters follow the rows: each changed row leaves the counter of its old
    /// state and joins the one of its new state. So a recipient deferred five times
    /// counts once in `deferred`, a cancelled recipient whose attempt was already in
    /// flight moves from `cancelled` to `sent`, and the counters always add up to the
    /// rows, whatever order the outcomes arrive in (or how often one is replayed).
    static func deltas(_ transitions: [Transition]) -> [Key: Deltas] {
        var deltas: [Key: Deltas] = [:]
        for t in transitions where t.old != t.new {
            var d = deltas[t.key] ?? Deltas()
            if let k = counter(t.old) { d[keyPath: k] -= 1 }
            if let k = counter(t.new) { d[keyPath: k] += 1 }
            if isDelivery(t.new) && !isFinal(t.old) { d.finished += 1 }
            deltas[t.key] = d
        }
        return deltas
    }

    /// The hard bounces among `events` (subscriber and suppression updates).
    static func hardBounces(_ events: [CampaignDeliveryOutcome], classifier: BounceClassifier? = nil)
        -> [(key: Key, email: String)]
    {
        events.compactMap { event in
            guard event.isHardBounce(by: classifier), let c = event.campaign.flatMap({ Int64($0) }),
                  let t = event.tenant.flatMap({ Int64($0) }) else { return nil }
            let email = (try? SubscriberAddress.normalize(event.recipient).get()) ?? event.recipient.lowercased()
            return (Key(tenant: t, campaign: c), email)
        }
    }

    /// One recipient's outcome for `campaign_recipients`.
    struct RecipientUpdate: Sendable {
        var tenant: Int64
        var campaign: Int64
        var subscriber: Int64
        var queueID: String
        var state: String
        var reason: String

        init?(_ event: CampaignDeliveryOutcome) {
            guard !event.isBounceMessage,
                  let c = event.campaign.flatMap({ Int64($0) }), let t = event.tenant.flatMap({ Int64($0) }),
                  let s = CampaignExpander.subscriber(fromQueueID: event.queueID, campaign: c)
            else { return nil }
            tenant = t
            campaign = c
            subscriber = s
            queueID = event.queueID
            state = event.recipientState
            reason = event.reason
        }

        var key: [Int64] { [campaign, subscriber] }
    }

    private func write(_ events: [CampaignDeliveryOutcome]) async {
        let now = Date()
        unmatched.removeAll { now.timeIntervalSince($0.since) > unmatchedRetention }
        let carried = unmatched
        // Outcomes of campaign messages, oldest first (carried ones are older).
        let candidates = (carried.map(\.event) + events).compactMap { e in RecipientUpdate(e).map { (e, $0) } }
        guard !candidates.isEmpty else { return }
        let updates = candidates.map(\.1)
        let recipients: [String?] = [
            PGText.array(updates.map(\.tenant)), PGText.array(updates.map(\.campaign)),
            PGText.array(updates.map(\.subscriber)), PGText.textArray(updates.map(\.queueID)),
            PGText.textArray(updates.map(\.state)), PGText.textArray(updates.map(\.reason)),
        ]
        let classifier = self.classifier
        do {
            let (matched, deltas): (Set<[Int64]>, [Key: Deltas]) = try await db.transaction { connection in
                // The latest outcome per recipient, on the row that carries its queue id,
                // with the state the row had (locked, so concurrent writers serialise).
                var matched = Set<[Int64]>()
                var transitions: [Transition] = []
                for row in try connection.query("""
                    WITH u AS (
                        SELECT DISTINCT ON (u.campaign_id, u.subscriber_id) u.*
                        FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[])
                             WITH ORDINALITY AS u(tenant_id, campaign_id, subscriber_id, queue_id, state, reason, ord)
                        ORDER BY u.campaign_id, u.subscriber_id, u.ord DESC
                    ), old AS (
                        SELECT r.tenant_id, r.campaign_id, r.subscriber_id, r.state FROM campaign_recipients r JOIN u
                          ON r.campaign_id = u.campaign_id AND r.subscriber_id = u.subscriber_id
                         AND r.tenant_id = u.tenant_id AND r.queue_id = u.queue_id
                        FOR UPDATE OF r
                    ), changed AS (
                        UPDATE campaign_recipients AS r SET state = u.state, reason = u.reason, updated_at = now()
                        FROM u JOIN old ON old.campaign_id = u.campaign_id AND old.subscriber_id = u.subscriber_id
                        WHERE r.campaign_id = u.campaign_id AND r.subscriber_id = u.subscriber_id
                          AND old.state NOT IN ('sent', 'bounced', 'failed')
                        RETURNING r.campaign_id, r.subscriber_id, r.state
                    )
                    SELECT old.tenant_id, old.campaign_id, old.subscriber_id, old.state, coalesce(changed.state, old.state)
                    FROM old LEFT JOIN changed
                      ON changed.campaign_id = old.campaign_id AND changed.subscriber_id = old.subscriber_id
                    """, recipients).rows {
                    let tenant = try PGText.require(row, 0, PGText.int64), campaign = try PGText.require(row, 1, PGText.int64)
                    let subscriber = try PGText.require(row, 2, PGText.int64)
                    matched.insert([campaign, subscriber])
                    transitions.append(Transition(key: Key(tenant: tenant, campaign: campaign),
                                                  old: try PGText.require(row, 3), new: try PGText.require(row, 4),
                                                  recipient: [campaign, subscriber]))
                }
                let deltas = Self.deltas(transitions)
                // Only outcomes that changed their row act on subscribers (not a replay).
                let moved = Set(transitions.filter { $0.old != $0.new }.map(\.recipient))
                let hard = Self.hardBounces(candidates.filter { moved.contains($0.1.key) }.map(\.0),
                                            classifier: classifier)
                if !deltas.isEmpty {
                    let keys = Array(deltas.keys)
                    func column(_ k: KeyPath<Deltas, Int64>) -> String? { PGText.array(keys.map { deltas[$0]![keyPath: k] }) }
                    try connection.execute("""
                        UPDATE campaign_counters AS n SET sent = n.sent + u.sent, deferred = n.deferred + u.deferred,
                            bounced = n.bounced + u.bounced, failed = n.failed + u.failed,
                            cancelled = n.cancelled + u.cancelled, held = n.held + u.held, updated_at = now()
                        FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                                    $7::bigint[], $8::bigint[])
                             AS u(tenant_id, campaign_id, sent, deferred, bounced, failed, cancelled, held)
                        WHERE n.tenant_id = u.tenant_id AND n.campaign_id = u.campaign_id
                        """, [PGText.array(keys.map(\.tenant)), PGText.array(keys.map(\.campaign)), column(\.sent),
                              column(\.deferred), column(\.bounced), column(\.failed), column(\.cancelled), column(\.held)])
                    // A campaign whose last recipient just got its final outcome is complete.
                    try CampaignStore.finishCompleted(connection, campaigns: keys.map(\.campaign))
                }
                guard !hard.isEmpty else { return (matched, deltas) }
                try connection.execute("""
                    WITH b AS (
                        SELECT DISTINCT ON (b.tenant_id, b.email) b.tenant_id, b.email, b.campaign_id
                        FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS b(tenant_id, email, campaign_id)
                    ), marked AS (
                        UPDATE subscribers AS s SET status = 'bounced', updated_at = now()
                        FROM b WHERE s.tenant_id = b.tenant_id AND s.email = b.email
                          AND s.status IN ('active', 'unsubscribed')
                    )
                    INSERT INTO suppressions (tenant_id, email, reason, campaign_id)
                    SELECT tenant_id, email, 'bounced', campaign_id FROM b
                    ON CONFLICT (tenant_id, email) DO NOTHING
                    """, [
                        PGText.array(hard.map(\.key.tenant)), PGText.textArray(hard.map(\.email)),
                        PGText.array(hard.map(\.key.campaign)),
                    ])
                return (matched, deltas)
            }
            let firstSeen = Dictionary(carried.compactMap { c in RecipientUpdate(c.event).map { ($0.key, c.since) } },
                                       uniquingKeysWith: min)
            unmatched = candidates.filter { !matched.contains($0.1.key) }.map { ($0.0, firstSeen[$0.1.key] ?? now) }
            let written = candidates.count(where: { matched.contains($0.1.key) })
            if written > 0 {
                batchesWritten += 1
                eventsWritten += written
            }
            if let newest = events.map(\.time).max() { advanceCheckpoint(to: newest) }
            noteRate(deltas)
            noteSeries(candidates.filter { matched.contains($0.1.key) }.map(\.0), now: now)
            if !unmatched.isEmpty && !unmatchedRetryScheduled {
                unmatchedRetryScheduled = true
                let interval = self.interval
                Task {
                    try? await Task.sleep(for: interval)
                    await self.retryUnmatched()
                }
            }
        } catch {
            let (retry, dropped) = buffer.putBack(events, limit: maxBuffered)
            logger.error("cannot update campaign counters; will retry", metadata: [
                "events": "\(events.count)", "dropped": "\(dropped)", "error": "\(error)",
            ])
            if retry { scheduleWrite() }
        }
    }

    // MARK: - Crash recovery

    /// Outcomes are buffered for up to ``interval`` before they are written: a SIGKILL
    /// loses that much. The delivery log has every outcome before it reaches the buffer,
    /// so at start-up the node replays the log's lines from a little before the newest
    /// outcome written last time (kept in `checkpointPath`) and records them again.
    /// Replaying is harmless: a recipient's row only moves to the state of its latest
    /// outcome, and the counters follow the rows. Without a checkpoint (no batch was
    /// ever written: every process so far was killed within its first ``interval``),
    /// the whole log is replayed. Returns the outcomes replayed.
    @discardableResult
    public func replay(logPath: String, checkpointPath: String, margin: TimeInterval = 10) async -> Int {
        self.checkpointPath = checkpointPath
        var since = Date.distantPast
        if let data = FileManager.default.contents(atPath: checkpointPath),
           let written = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true)
               .parse(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) {
            checkpoint = written
            since = written.addingTimeInterval(-margin)
        }
        let events = DeliveryLog.entries(at: logPath, since: since)
            .compactMap(DeliveryOutcomeEvent.init(replaying:)).filter { $0.campaign != nil }
        for event in events { record(event) }
        await flush()
        if !events.isEmpty {
            logger.notice("campaign outcomes replayed from the delivery log", metadata: ["events": "\(events.count)"])
        }
        return events.count
    }

    private func advanceCheckpoint(to time: Date) {
        guard let checkpointPath, time > (checkpoint ?? .distantPast) else { return }
        checkpoint = time
        let text = time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)) + "\n"
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: checkpointPath), options: .atomic)
        } catch {
            logger.error("cannot write the stats checkpoint", metadata: ["path": "\(checkpointPath)", "error": "\(error)"])
        }
    }

    // MARK: - Rate and estimated completion

    private func noteRate(_ deltas: [Key: Deltas]) {
        let now = Int64(Date().timeIntervalSince1970)
        for (key, d) in deltas where d.finished > 0 {
            var window = recent[key.campaign, default: []].filter { $0.second > now - 60 }
            if let last = window.last, last.second == now {
                window[window.count - 1].count += d.finished
            } else {
                window.append((now, d.finished))
            }
            recent[key.campaign] = window
        }
    }

    // MARK: - Outcomes per minute

    /// One minute of a campaign's outcomes as this process recorded them: every attempt
    /// counts (a recipient deferred three times is three deferrals).
    public struct MinuteCounts: Sendable, Equatable {
        public var sent = 0
        public var deferred = 0
        public var bounced = 0
        public var failed = 0
        public init(sent: Int = 0, deferred: Int = 0, bounced: Int = 0, failed: Int = 0) {
            self.sent = sent
            self.deferred = deferred
            self.bounced = bounced
            self.failed = failed
        }
    }

    /// How many minutes of outcomes are kept per campaign (in memory: this process's,
    /// since it started).
    public static let seriesMinutes = 180
    /// Per campaign: minute (since the epoch) → outcomes.
    private var series: [Int64: [Int64: MinuteCounts]] = [:]

    private func noteSeries(_ events: [CampaignDeliveryOutcome], now: Date) {
        let oldest = Int64(now.timeIntervalSince1970) / 60 - Int64(Self.seriesMinutes)
        var touched = Set<Int64>()
        for event in events {
            guard let campaign = event.campaign.flatMap({ Int64($0) }) else { continue }
            let minute = Int64(event.time.timeIntervalSince1970) / 60
            guard minute > oldest else { continue }
            let counter: WritableKeyPath<MinuteCounts, Int>
            switch event.recipientState {
            case "sent": counter = \.sent
            case "deferred": counter = \.deferred
            case "bounced": counter = \.bounced
            case "failed": counter = \.failed
            default: continue
            }
            series[campaign, default: [:]][minute, default: MinuteCounts()][keyPath: counter] += 1
            touched.insert(campaign)
        }
        guard !touched.isEmpty else { return }
        for (campaign, minutes) in series {
            let kept = minutes.filter { $0.key > oldest }
            series[campaign] = kept.isEmpty ? nil : kept
        }
    }

    /// The campaign's outcomes per minute over the last `minutes` minutes up to `now`'s
    /// minute, oldest first, every minute present (zeros where nothing happened).
    public func outcomesPerMinute(campaign: Int64, minutes: Int, now: Date = Date()) -> [(minute: Date, counts: MinuteCounts)] {
        let last = Int64(now.timeIntervalSince1970) / 60
        let count = Int64(max(1, min(minutes, Self.seriesMinutes)))
        let known = series[campaign] ?? [:]
        return (last - count + 1 ... last).map { m in
            (Date(timeIntervalSince1970: TimeInterval(m * 60)), known[m] ?? MinuteCounts())
        }
    }

    /// Recipients this process saw reach a final outcome (delivered, bounced, failed,
    /// expired) in the last 60 seconds, per minute.
    public func ratePerMinute(campaign: Int64) -> Int {
        let now = Int64(Date().timeIntervalSince1970)
        return recent[campaign, default: []].filter { $0.second > now - 60 }.reduce(0) { $0 + $1.count }
    }

    public struct Progress: Sendable, Equatable {
        /// Final outcomes per minute (last minute, this process).
        public var ratePerMinute: Int
        /// When the rest would be done (``CampaignProgress/estimatedCompletion``); nil when unknown.
        public var estimatedCompletion: Date?
    }

    /// The campaign's current rate and estimated completion from its stats.
    public func progress(_ stats: CampaignStats, campaign: Int64, now: Date = Date()) -> Progress {
        let rate = ratePerMinute(campaign: campaign)
        return Progress(ratePerMinute: rate, estimatedCompletion: CampaignProgress.estimatedCompletion(
            stats, observedPerMinute: rate, now: now))
    }
}

/// When a campaign's remaining recipients will have been sent.
public enum CampaignProgress {
    /// - With a `send_rate`, the rate is the pace (the queue manager holds the campaign
    ///   to it); with a send window in one zone as well, only the window's open hours
    ///   count (2,000 at 10/m: 3 h 20 min of open window). A window in each recipient's
    ///   own zone has no single calendar: nil.
    /// - Without a rate: the outcomes this node saw in the last minute, if any.
    /// - nil when nothing remains, while paused, and when the pace is unknown: absent
    ///   rather than wrong. Retries of deferred recipients are not foreseen.
    public static func estimatedCompletion(_ stats: CampaignStats, observedPerMinute: Int, now: Date) -> Date? {
        let remaining = stats.remaining
        guard remaining > 0, stats.status == .sending else { return nil }
        guard let rate = stats.sendRate.flatMap(Rate.init) else {
            return observedPerMinute > 0 ? now.addingTimeInterval(Double(remaining) / Double(observedPerMinute) * 60) : nil
        }
        let perSecond = rate.count / rate.per
        guard let policy = stats.sendWindow else { return now.addingTimeInterval(Double(remaining) / perSecond) }
        guard !policy.recipientTimeZone,
              let window = policy.window(campaignZone: stats.timeZone, attributes: [:]) else { return nil }
        var time = now
        var left = Double(remaining)
        // Open stretch by open stretch; a window is open at least a minute a week, so
        // a few thousand stretches cover years.
        for _ in 0..<5000 {
            guard let closes = window.openUntil(at: time) else {
                time = window.nextOpening(atOrAfter: time)
                continue
            }
            let capacity = closes.timeIntervalSince(time) * perSecond
            if capacity >= left { return time.addingTimeInterval(left / perSecond) }
            left -= capacity
            time = closes
        }
        return nil
    }
}
