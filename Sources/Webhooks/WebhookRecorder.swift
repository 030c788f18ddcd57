import CampaignStore
import Campaigns
import Delivery
import Foundation
import Logging
import NIOConcurrencyHelpers
import Spool

/// The `[webhooks]` settings (conf/herald.toml documents each key and its default).
public struct WebhookSettings: Sendable {
    /// Requests one endpoint gets at once from one node. Default: 4.
    public var concurrencyPerEndpoint = 4
    /// Requests in flight from one node. Default: 64.
    public var maxInFlight = 64
    /// Time-out of one request, connection included. Default: 10 s.
    public var timeout: Duration = .seconds(10)
    /// Retry back-off (``WebhookBackoff``). Defaults: 10 s, doubling, at most 1 h.
    public var backoff = WebhookBackoff(minimum: .seconds(10), maximum: .seconds(3600))
    /// An endpoint without a 2xx answer for this long is disabled with a reason. Default: 3 days.
    public var disableAfter: Duration = .seconds(3 * 86_400)
    /// A delivery still failing this long after its event is given up (`failed`). Default: 3 days.
    public var retryFor: Duration = .seconds(3 * 86_400)
    /// Delivered and given-up deliveries (and their events) are deleted after this. Default: 7 days.
    public var retention: Duration = .seconds(7 * 86_400)
    /// Loopback and private addresses allowed as endpoints (``WebhookAddressPolicy``). Default: false.
    public var allowPrivateAddresses = false
    /// How often buffered delivery events are written, and due deliveries looked for. Default: 1 s.
    public var flushInterval: Duration = .seconds(1)

    public init() {}
}

/// Turns acceptances and delivery outcomes into outbox events, off the hot path:
/// ``record(_:)`` and ``accepted(_:)`` append to a locked buffer and return; ``flush()``
/// (the dispatcher calls it every ``WebhookSettings/flushInterval``) writes the buffer in
/// one transaction. A failed write keeps the batch for the next flush (up to
/// ``maxBuffered`` events; beyond that the oldest are dropped and logged, and come back
/// at the next start-up's replay only if they are still in the delivery log's window).
///
/// Only mail with a database tenant's tag (its numeric id) makes events; DSNs Herald
/// generates do not. Results: `delivered`; `deferred`; `failed` with a permanent status
/// (5.x.x, or a bare 5xx) is `bounced`, any other `failed` and `expired` are `failed`;
/// cancellations, postmaster deletions, holds and releases make none.
public final class WebhookRecorder: Sendable {
    let store: WebhookStore
    let logger: Logger
    public let maxBuffered: Int
    private let state = NIOLockedValueBox<State>(State())

    struct State {
        var events: [WebhookEvent] = []
        var checkpoint: Date?
        var checkpointPath: String?
    }

    public init(store: WebhookStore, maxBuffered: Int = 1_000_000, logger: Logger) {
        self.store = store
        self.maxBuffered = max(1, maxBuffered)
        self.logger = logger
    }

    /// The tenant a mail tag names, when it is a database tenant's.
    static func tenant(_ tag: String?) -> TenantID? {
        guard let tag, let id = Int64(tag), id > 0 else { return nil }
        return TenantID(id)
    }

    /// The webhook event of a delivery outcome, or nil when it makes none.
    public static func event(_ outcome: DeliveryOutcomeEvent) -> WebhookEvent? {
        guard !outcome.isBounceMessage, let tenant = tenant(outcome.tenant) else { return nil }
        let type: WebhookEventType
        switch outcome.result {
        case .delivered: type = .delivered
        case .deferred: type = .deferred
        case .failed: type = outcome.isPermanentFailure ? .bounced : .failed
        case .expired: type = .failed
        case .cancelled, .deleted, .held, .released: return nil
        }
        var data: [String: WebhookValue] = [
            "queue_id": .string(outcome.queueID), "recipient": .string(outcome.recipient),
            "attempt": .int(Int64(outcome.attempt)),
        ]
        if let campaign = outcome.campaign.flatMap({ Int64($0) }) { data["campaign_id"] = .int(campaign) }
        if let code = outcome.code { data["code"] = .int(Int64(code)) }
        if let enhanced = outcome.enhanced { data["enhanced_status"] = .string(enhanced) }
        if let reply = outcome.reply, !reply.isEmpty { data["reply"] = .string(String(reply.prefix(1000))) }
        if outcome.result == .expired { data["expired"] = .bool(true) }
        return WebhookEvent(tenant: tenant, type: type,
                            key: "\(outcome.queueID)/\(outcome.recipient)/\(outcome.result.rawValue)/\(outcome.attempt)",
                            data: data, occurredAt: outcome.time)
    }

    /// The `accepted` event of one recipient of a committed message.
    static func accepted(tenant: TenantID, queueID: String, recipient: String, campaign: String?, sender: String?,
                         at time: Date) -> WebhookEvent {
        var data: [String: WebhookValue] = ["queue_id": .string(queueID), "recipient": .string(recipient)]
        if let sender { data["sender"] = .string(sender) }
        if let campaign = campaign.flatMap({ Int64($0) }) { data["campaign_id"] = .int(campaign) }
        return WebhookEvent(tenant: tenant, type: .accepted, key: "\(queueID)/\(recipient)/accepted", data: data,
                            occurredAt: time)
    }

    /// The `accepted` events of a message's recipients (all, or only those not yet
    /// attempted: a recovered message's, for ``replay(logPath:recovered:checkpointPath:margin:)``).
    public static func acceptedEvents(_ envelope: Envelope, onlyUnattempted: Bool) -> [WebhookEvent] {
        guard let tenant = tenant(envelope.tenant), !(envelope.sender.isEmpty && envelope.origin.listener == "bounce")
        else { return [] }
        return envelope.recipients.filter { !onlyUnattempted || $0.attempts == 0 }.map {
            accepted(tenant: tenant, queueID: envelope.id.rawValue, recipient: $0.address, campaign: envelope.campaign,
                     sender: envelope.sender, at: envelope.arrival)
        }
    }

    /// A message was committed to the spool: one `accepted` event per recipient.
    public func accepted(_ envelope: Envelope) {
        let events = Self.acceptedEvents(envelope, onlyUnattempted: false)
        guard !events.isEmpty else { return }
        state.withLockedValue { $0.events += events }
    }

    /// A delivery outcome (the queue manager's hook: returns at once).
    public func record(_ outcome: DeliveryOutcomeEvent) {
        guard let event = Self.event(outcome) else { return }
        state.withLockedValue { $0.events.append(event) }
    }

    /// Events waiting to be written.
    public var buffered: Int { state.withLockedValue { $0.events.count } }

    /// Writes what is buffered (one transaction); on failure the batch is kept.
    public func flush() async {
        let batch = state.withLockedValue { s in
            defer { s.events.removeAll(keepingCapacity: true) }
            return s.events
        }
        guard !batch.isEmpty else { return }
        do {
            // Large batches go in slices, so that one transaction stays a reasonable size.
            var start = 0
            while start < batch.count {
                let slice = Array(batch[start..<min(batch.count, start + 5000)])
                try await store.enqueue(slice)
                start += slice.count
                if let newest = slice.map(\.occurredAt).max() { advanceCheckpoint(to: newest) }
            }
        } catch {
            let dropped = state.withLockedValue { s -> Int in
                s.events = batch + s.events
                let over = max(0, s.events.count - maxBuffered)
                s.events.removeFirst(over)
                return over
            }
            logger.error("cannot write webhook events; will retry", metadata: [
                "events": "\(batch.count)", "dropped": "\(dropped)", "error": "\(error)",
            ])
        }
    }

    // MARK: - Crash recovery

    /// Puts back what a SIGKILL may have lost from the buffer (see the module comment):
    /// the delivery log's outcomes from `margin` before the checkpoint (none without one:
    /// the first start makes it), an `accepted` event for each recipient of those first attempts, and
    /// `recovered`: the `accepted` events of the recipients of the spool's messages not
    /// yet attempted (``acceptedEvents(_:onlyUnattempted:)``). The outbox's unique key
    /// drops the ones written before. Returns the events replayed.
    @discardableResult
    public func replay(logPath: String?, recovered: [WebhookEvent], checkpointPath: String,
                       margin: TimeInterval = WebhookRecorder.replayMargin) -> Int
    {
        state.withLockedValue { $0.checkpointPath = checkpointPath }
        guard let written = Self.checkpoint(at: checkpointPath) else {
            // The first start with webhooks: what the log holds happened before, and is not
            // replayed (it would reach endpoints made since). From now on there is a checkpoint.
            advanceCheckpoint(to: Date())
            return 0
        }
        state.withLockedValue { $0.checkpoint = written }
        let since = written.addingTimeInterval(-margin)
        var events: [WebhookEvent] = []
        if let logPath {
            for entry in DeliveryLog.entries(at: logPath, since: since) {
                guard let outcome = DeliveryOutcomeEvent(replaying: entry) else { continue }
                if let event = Self.event(outcome) { events.append(event) }
                if entry.attempt <= 1, outcome.result != .cancelled, outcome.result != .deleted,
                   let tenant = Self.tenant(entry.tenant) {
                    events.append(Self.accepted(tenant: tenant, queueID: entry.queueId, recipient: entry.recipient,
                                                campaign: entry.campaign, sender: nil, at: entry.time))
                }
            }
        }
        events += recovered
        guard !events.isEmpty else { return 0 }
        // Written by the dispatcher's first flush: a large spool does not hold up the start.
        state.withLockedValue { $0.events = events + $0.events }
        logger.notice("webhook events replayed from the delivery log and the spool", metadata: ["events": "\(events.count)"])
        return events.count
    }

    /// How far before the checkpoint's time a replay starts.
    public static let replayMargin: TimeInterval = 10

    /// The time in a checkpoint file (nil: none yet, or unreadable).
    public static func checkpoint(at path: String) -> Date? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? Date.ISO8601FormatStyle(includingFractionalSeconds: true)
            .parse(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private func advanceCheckpoint(to time: Date) {
        let path: String? = state.withLockedValue { s in
            guard let path = s.checkpointPath, time > (s.checkpoint ?? .distantPast) else { return nil }
            s.checkpoint = time
            return path
        }
        guard let path else { return }
        let text = time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)) + "\n"
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            logger.error("cannot write the webhook checkpoint", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}
