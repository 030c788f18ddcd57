import Foundation

/// One recipient's outcome of one delivery attempt, as the queue manager decided it
/// (the same moment it writes the delivery-log line). Handed to
/// ``QueueManager``'s `onOutcome` hook, e.g. to update campaign statistics. Delivery
/// knows nothing of campaigns: `tenant` and `campaign` are the envelope's tags, as text.
public struct DeliveryOutcomeEvent: Sendable, Equatable {
    public enum Result: String, Sendable, Equatable {
        /// Accepted by the receiving MTA (final).
        case delivered
        /// A temporary failure; the recipient is retried later.
        case deferred
        /// A permanent failure (final; a DSN is queued when the sender wants one).
        case failed
        /// Still deferred when the message passed its maximum lifetime (final).
        case expired
        /// Removed before delivery because its campaign was cancelled (final).
        case cancelled
        /// Removed from `queue/` or `hold/` by the postmaster (`herald queue delete`) before delivery (final).
        case deleted
        /// Moved to `hold/` by the postmaster (`herald queue hold`): waits, not final.
        case held
        /// Back in `queue/` after a postmaster hold (`herald queue release`): waits again.
        case released
    }

    public var time: Date
    public var queueID: String
    public var recipient: String
    public var tenant: String?
    public var campaign: String?
    public var result: Result
    /// The SMTP reply code and enhanced status (`5.1.1`) the outcome rests on
    /// (for `expired`: the last temporary reply's code; `enhanced` is then `4.4.7`).
    public var code: Int?
    public var enhanced: String?
    /// True when this was the recipient's first attempt.
    public var firstAttempt: Bool
    /// The recipient's attempts so far, this one included (the delivery log's `attempt`;
    /// 0 for outcomes without an attempt, e.g. a deletion before the first). With the
    /// queue id, recipient and result it names one outcome, live or replayed.
    public var attempt: Int
    /// True when the recipient was `deferred` before this attempt: a consumer that
    /// counts "currently deferred" recipients needs no state of its own (the flag
    /// comes from the envelope, so it survives restarts).
    public var wasDeferred: Bool
    /// True for a DSN Herald generated (null sender): it keeps the original's tenant
    /// and campaign tags, but its outcome is not one of the campaign's recipients'.
    public var isBounceMessage: Bool
    /// The reply text (or local reason) as the delivery log has it, e.g. `550 5.1.1 no such user`.
    public var reply: String?

    public init(time: Date = Date(), queueID: String, recipient: String, tenant: String?, campaign: String?,
                result: Result, code: Int? = nil, enhanced: String? = nil, firstAttempt: Bool = true,
                wasDeferred: Bool = false, isBounceMessage: Bool = false, reply: String? = nil, attempt: Int = 0) {
        self.reply = reply
        self.attempt = attempt
        self.time = time
        self.queueID = queueID
        self.recipient = recipient
        self.tenant = tenant
        self.campaign = campaign
        self.result = result
        self.code = code
        self.enhanced = enhanced
        self.firstAttempt = firstAttempt
        self.wasDeferred = wasDeferred
        self.isBounceMessage = isBounceMessage
    }
}

extension DeliveryOutcomeEvent {
    /// The event a delivery-log line records (the log is written before the event is
    /// handed on, so after a crash it can be replayed from there). nil for lines that
    /// are not a recipient outcome (`bounced`: a DSN was queued).
    public init?(replaying entry: DeliveryLog.Entry) {
        guard let result = Result(rawValue: entry.result) else { return nil }
        self.init(time: entry.time, queueID: entry.queueId, recipient: entry.recipient, tenant: entry.tenant,
                  campaign: entry.campaign, result: result, code: entry.code, enhanced: entry.enhanced,
                  firstAttempt: entry.attempt <= 1, wasDeferred: false, reply: entry.reply, attempt: entry.attempt)
    }
}

/// The hook's type. It is called on the queue manager's actor for every recipient
/// outcome, so it must return at once (buffer, do not write to a database inline).
public typealias DeliveryOutcomeHandler = @Sendable (DeliveryOutcomeEvent) -> Void
