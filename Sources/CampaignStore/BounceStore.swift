import Foundation
import Postgres

/// A bounce or complaint that arrived after delivery, about one campaign message.
public enum BounceEventType: String, Sendable, Codable, CaseIterable, Equatable {
    case bounce, complaint
}

/// One event as the bounce intake found it in a report, before it is attributed.
public struct IncomingBounceEvent: Sendable, Equatable {
    public var type: BounceEventType
    /// From the report's return path (`<local>+c<campaign>-s<subscriber>@…`).
    public var campaignID: Int64
    public var subscriberID: Int64
    /// `bad-mailbox`, `bad-domain`, `mailbox-full`, `policy`, `too-large`, `transient`,
    /// `unknown` (bounces) or `complaint`.
    public var category: String
    public var hard: Bool
    /// The enhanced status code (`5.1.1`), if the report had one.
    public var status: String?
    public var diagnostic: String?
    /// Who reported it: the Reporting-MTA of a DSN, the User-Agent of a feedback report.
    public var reporter: String?
    /// The spool id of the report and the event's place in it: the same report processed
    /// twice is recorded once.
    public var source: String
    public var seq: Int

    public init(type: BounceEventType, campaignID: Int64, subscriberID: Int64, category: String, hard: Bool,
                status: String? = nil, diagnostic: String? = nil, reporter: String? = nil, source: String, seq: Int) {
        self.type = type
        self.campaignID = campaignID
        self.subscriberID = subscriberID
        self.category = category
        self.hard = hard
        self.status = status
        self.diagnostic = diagnostic
        self.reporter = reporter
        self.source = source
        self.seq = seq
    }
}

/// A recorded event, as `GET /v1/bounces` lists it.
public struct BounceEvent: Sendable, Equatable {
    public var id: Int64
    public var type: BounceEventType
    public var campaignID: Int64?
    public var subscriberID: Int64?
    public var email: String
    public var category: String
    public var hard: Bool
    public var status: String?
    public var diagnostic: String?
    public var reporter: String?
    /// The event suppressed the address (a hard bounce, a complaint, or the soft bounce
    /// that reached the limit).
    public var suppressed: Bool
    public var receivedAt: Date
}

/// What ``BounceStore/record(_:softBounces:)`` did with one event.
public enum BounceRecordOutcome: Sendable, Equatable {
    /// Recorded under this id; `suppressed` when it suppressed the address.
    case recorded(id: Int64, suppressed: Bool)
    /// Already recorded (the same report and place).
    case duplicate
    /// No such campaign, no such subscriber in the campaign's tenant, or the subscriber
    /// was not one of the campaign's recipients: nothing is recorded (a forged or stale
    /// return path cannot touch anyone's subscribers).
    case unattributed
}

/// When soft bounces suppress: `limit` of them for one address within `days`.
public struct SoftBounceLimit: Sendable, Equatable {
    public var limit: Int
    public var days: Int

    public init(limit: Int, days: Int) {
        self.limit = limit
        self.days = days
    }
}

/// Bounce and complaint events (`bounce_events`) and their effects on subscribers,
/// suppressions and campaign stats.
public struct BounceStore: Sendable {
    public let db: PostgresClient

    public init(_ db: PostgresClient) {
        self.db = db
    }

    /// Records the events of one report in one transaction, with their effects:
    /// - every event is kept (tenant, campaign, subscriber, category, diagnostic);
    /// - a bounce of a recipient recorded `sent` (or still waiting for its outcome to be
    ///   recorded, ``bounceable``) makes it `bounced` (its counter down by one,
    ///   `bounced` up by one);
    /// - a complaint counts in the campaign's `complained` (once per recipient);
    /// - a hard bounce, a complaint, or a soft bounce that makes `limit` soft bounces of
    ///   the address within `days` suppresses the address for the tenant (reason
    ///   `bounced` or `complained`; an existing suppression is kept) and marks the
    ///   subscriber `bounced` (an active or unsubscribed one) or `complained`.
    public func record(_ events: [IncomingBounceEvent], softBounces: SoftBounceLimit) async throws
        -> [BounceRecordOutcome]
    {
        try await db.transaction { connection in
            var outcomes: [BounceRecordOutcome] = []
            for event in events {
                // The recipient row is locked: a concurrent stats write serialises with us.
                guard let row = try connection.query("""
                    SELECT c.tenant_id, s.email, r.state FROM campaigns c
                    JOIN subscribers s ON s.tenant_id = c.tenant_id AND s.id = $2
                    JOIN campaign_recipients r ON r.campaign_id = c.id AND r.subscriber_id = s.id
                    WHERE c.id = $1
                    FOR UPDATE OF r
                    """, [String(event.campaignID), String(event.subscriberID)]).rows.first
                else {
                    outcomes.append(.unattributed)
                    continue
                }
                let tenant = try PGText.require(row, 0), email = try PGText.require(row, 1), state = row[2]
                let campaign = String(event.campaignID), subscriber = String(event.subscriberID)
                guard let inserted = try connection.query("""
                    INSERT INTO bounce_events (tenant_id, campaign_id, subscriber_id, email, type, category, hard,
                                               status, diagnostic, reporter, source, seq)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                    ON CONFLICT (source, seq) DO NOTHING RETURNING id
                    """, [tenant, campaign, subscriber, email, event.type.rawValue, event.category,
                          event.hard ? "true" : "false", event.status, event.diagnostic.map { String($0.prefix(1000)) },
                          event.reporter.map { String($0.prefix(255)) }, event.source, String(event.seq)]).rows.first
                else {
                    outcomes.append(.duplicate)
                    continue
                }
                let id = try PGText.require(inserted, 0, PGText.int64)
                // The webhook event commits with the report's record (a report processed
                // twice stops above: one event).
                var data: [String: WebhookValue] = [
                    "campaign_id": .int(event.campaignID), "subscriber_id": .int(event.subscriberID),
                    "email": .string(email), "category": .string(event.category), "hard": .bool(event.hard),
                    "source": .string("report"),
                ]
                if let status = event.status { data["enhanced_status"] = .string(status) }
                if let diagnostic = event.diagnostic { data["diagnostic"] = .string(String(diagnostic.prefix(1000))) }
                if let reporter = event.reporter { data["reporter"] = .string(String(reporter.prefix(255))) }
                try WebhookStore.enqueue(connection, [WebhookEvent(
                    tenant: TenantID(try PGText.require(row, 0, PGText.int64)),
                    type: event.type == .complaint ? .complained : .bounced, key: "report:\(id)", data: data,
                    occurredAt: Date())])
                switch event.type {
                case .bounce where state.map(Self.bounceable.contains) ?? false:
                    // The report can overtake the delivery outcome (recorded in batches):
                    // the recipient may still be queued or deferred. Either way the message
                    // was handed over and bounced, which is final; the stats recorder never
                    // moves a bounced recipient back (a late `delivered` finds it bounced).
                    try connection.execute("""
                        UPDATE campaign_recipients SET state = 'bounced', reason = $3, updated_at = now()
                        WHERE campaign_id = $1 AND subscriber_id = $2
                        """, [campaign, subscriber, Self.reason(event)])
                    try connection.execute("""
                        UPDATE campaign_counters SET sent = sent - ($2 = 'sent')::int,
                            deferred = deferred - ($2 = 'deferred')::int, held = held - ($2 = 'held')::int,
                            bounced = bounced + 1, updated_at = now()
                        WHERE campaign_id = $1
                        """, [campaign, state])
                    try CampaignStore.finishCompleted(connection, campaigns: [event.campaignID])
                case .bounce:
                    break
                case .complaint:
                    // A recipient counts once, however many reports arrive about its message.
                    try connection.execute("""
                        UPDATE campaign_counters SET complained = complained + 1, updated_at = now()
                        WHERE campaign_id = $1 AND NOT EXISTS (
                            SELECT 1 FROM bounce_events WHERE campaign_id = $1 AND subscriber_id = $2
                              AND type = 'complaint' AND id <> $3)
                        """, [campaign, subscriber, String(id)])
                }
                var suppress = event.type == .complaint || event.hard
                if !suppress {
                    let count = try connection.query("""
                        SELECT count(*) FROM bounce_events
                        WHERE tenant_id = $1 AND email = $2 AND type = 'bounce' AND NOT hard
                          AND received_at > now() - make_interval(days => $3::int)
                        """, [tenant, email, String(softBounces.days)]).rows.first
                    suppress = try count.map { try PGText.require($0, 0, PGText.int64) } ?? 0 >= Int64(softBounces.limit)
                }
                if suppress {
                    let complaint = event.type == .complaint
                    try connection.execute(complaint ? """
                        UPDATE subscribers SET status = 'complained', updated_at = now()
                        WHERE tenant_id = $1 AND id = $2 AND status <> 'complained'
                        """ : """
                        UPDATE subscribers SET status = 'bounced', updated_at = now()
                        WHERE tenant_id = $1 AND id = $2 AND status IN ('active', 'unsubscribed')
                        """, [tenant, subscriber])
                    try connection.execute("""
                        INSERT INTO suppressions (tenant_id, email, reason, campaign_id) VALUES ($1, $2, $3, $4)
                        ON CONFLICT (tenant_id, email) DO NOTHING
                        """, [tenant, email, complaint ? "complained" : "bounced", campaign])
                    try connection.execute("UPDATE bounce_events SET suppressed = true WHERE id = $1", [String(id)])
                }
                outcomes.append(.recorded(id: id, suppressed: suppress))
            }
            return outcomes
        }
    }

    /// Recipient states a bounce report makes `bounced`: handed over (`sent`), or not yet
    /// known to be (the outcome is still in the stats recorder's buffer). A recipient
    /// already `bounced` or `failed`, `cancelled`, `skipped` or `pending` (a retry in
    /// progress) keeps its state; the event is recorded all the same.
    static let bounceable: Set<String> = ["sent", "queued", "deferred", "held"]

    /// The recipient's `reason` (the failures list): status and diagnostic.
    static func reason(_ event: IncomingBounceEvent) -> String {
        let text = [event.status, event.diagnostic].compactMap { $0 }.joined(separator: " ")
        return String((text.isEmpty ? "bounced after delivery (\(event.category))" : text).prefix(1000))
    }

    static let columns = """
        id, type, campaign_id, subscriber_id, email, category, hard, status, diagnostic, reporter, suppressed, received_at
        """

    /// A page of the tenant's events in the order they arrived, after the one numbered
    /// `after`, optionally only one campaign's, one address's or one type.
    public func events(tenant: TenantID, campaignID: Int64? = nil, email: String? = nil, type: BounceEventType? = nil,
                       after: Int64?, limit: Int) async throws -> [BounceEvent]
    {
        let email = email.map { (try? SubscriberAddress.normalize($0).get()) ?? $0.lowercased() }
        return try await db.query("""
            SELECT \(Self.columns) FROM bounce_events
            WHERE tenant_id = $1 AND id > $2 AND ($3::bigint IS NULL OR campaign_id = $3)
              AND ($4::text IS NULL OR email = $4) AND ($5::text IS NULL OR type = $5)
            ORDER BY id LIMIT $6
            """, [tenant.parameter, String(after ?? 0), campaignID.map(String.init), email, type?.rawValue,
                  String(limit)]).map { row in
            BounceEvent(id: try PGText.require(row, 0, PGText.int64),
                        type: try PGText.require(row, 1, BounceEventType.init(rawValue:)),
                        campaignID: try PGText.optional(row, 2, PGText.int64),
                        subscriberID: try PGText.optional(row, 3, PGText.int64),
                        email: try PGText.require(row, 4), category: try PGText.require(row, 5),
                        hard: try PGText.require(row, 6, PGText.boolean), status: row[7], diagnostic: row[8],
                        reporter: row[9], suppressed: try PGText.require(row, 10, PGText.boolean),
                        receivedAt: try PGText.require(row, 11, PGText.timestamp))
        }
    }
}
