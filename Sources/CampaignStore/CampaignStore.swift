import Foundation
import Postgres
import Rendering
import Spool

public enum CampaignStatus: String, Sendable, Codable, CaseIterable, Equatable {
    case draft, scheduled, sending, paused, cancelled, sent, expired
}

/// A campaign of one tenant: who it is from, its templates, and the lists it goes to.
public struct Campaign: Sendable, Equatable {
    public var id: Int64
    public var tenant: TenantID
    public var name: String
    public var from: String
    public var replyTo: String?
    public var subject: String
    public var html: String?
    public var text: String?
    public var listIDs: [Int64]
    /// Only subscribers whose attributes match (nil: every active subscriber of the lists).
    public var segment: Segment?
    /// At most this many of the campaign's messages per unit, over all destinations
    /// (`"100/m"`), enforced by the delivery queue manager; nil = only the configured throttles.
    public var sendRate: String?
    /// Delivery attempts of its messages start only inside this daily window.
    public var sendWindow: CampaignSendWindow?
    /// A recipient still deferred on this attempt fails (with the configured limits, the
    /// lowest applies); nil = only `[delivery]` / the route's `max_attempts`.
    public var maxAttempts: Int? = nil
    /// Open tracking (a 1x1 image in the HTML part) and click tracking (links rewritten
    /// to signed redirects), both off unless asked for.
    public var trackOpens: Bool = false
    public var trackClicks: Bool = false
    /// The zone `send_at` was given in (`schedule`), and the window's default zone.
    public var timeZone: String
    public var status: CampaignStatus
    /// When `send` moved it to `sending` (the time part of its messages' queue ids).
    public var startedAt: Date?
    public var finishedAt: Date?
    public var createdAt: Date
    public var updatedAt: Date

    /// The `{{campaign.*}}` values templates see.
    public var templateFields: [String: TemplateValue] {
        var fields: [String: TemplateValue] = ["id": .string(String(id)), "name": .string(name),
                                               "subject": .string(subject), "from": .string(from)]
        if let replyTo { fields["reply_to"] = .string(replyTo) }
        return fields
    }
}

/// What a create or update request carries. On update, nil leaves a field as it is
/// (`reply_to`, `html` and `text` can be cleared with an empty string).
public struct CampaignInput: Sendable, Equatable {
    public var name: String?
    public var from: String?
    public var replyTo: String?
    public var subject: String?
    public var html: String?
    public var text: String?
    public var listIDs: [Int64]?
    /// nil leaves the field as it is; `.some(nil)` clears it.
    public var segment: Segment??
    public var sendRate: String??
    public var sendWindow: CampaignSendWindow??
    public var maxAttempts: Int??
    public var trackOpens: Bool?
    public var trackClicks: Bool?

    public init(name: String? = nil, from: String? = nil, replyTo: String? = nil, subject: String? = nil,
                html: String? = nil, text: String? = nil, listIDs: [Int64]? = nil, segment: Segment?? = nil,
                sendRate: String?? = nil, sendWindow: CampaignSendWindow?? = nil, maxAttempts: Int?? = nil,
                trackOpens: Bool? = nil, trackClicks: Bool? = nil) {
        self.maxAttempts = maxAttempts
        self.trackOpens = trackOpens
        self.trackClicks = trackClicks
        self.name = name
        self.from = from
        self.replyTo = replyTo
        self.subject = subject
        self.html = html
        self.text = text
        self.listIDs = listIDs
        self.segment = segment
        self.sendRate = sendRate
        self.sendWindow = sendWindow
    }
}

/// A campaign's counters (`GET /v1/campaigns/{id}/stats`).
public struct CampaignStats: Sendable, Equatable {
    public var status: CampaignStatus
    public var total: Int64
    public var expanded: Int64
    public var skipped: Int64
    public var sent: Int64
    public var deferred: Int64
    public var bounced: Int64
    public var failed: Int64
    public var unsubscribed: Int64
    /// Recipients whose mail a cancel removed before delivery (recorded ones; see ``unexpanded``).
    public var cancelled: Int64
    /// Recipients whose message the postmaster holds (`herald queue hold`): still waiting.
    public var held: Int64
    /// Complaints (feedback reports) about the campaign's messages (``BounceStore``).
    public var complained: Int64 = 0
    public var chunks: Int64
    public var chunksDone: Int64
    /// The campaign's send rate, its send window and zone (for the estimated completion).
    public var sendRate: String?
    public var sendWindow: CampaignSendWindow?
    public var timeZone: String
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Opens and clicks (all, and distinct subscribers) when the campaign tracks them.
    public var opens: Int64 = 0
    public var uniqueOpens: Int64 = 0
    public var clicks: Int64 = 0
    public var uniqueClicks: Int64 = 0

    /// Recipients not expanded into the spool (yet): none once expansion is done.
    public var unexpanded: Int64 { max(0, total - expanded - skipped) }

    /// Recipients that will get no mail because of a cancel: the recorded ones, and
    /// once the campaign is `cancelled`, those never expanded.
    public var cancelledTotal: Int64 { cancelled + (status == .cancelled ? unexpanded : 0) }

    /// Recipients still waiting for a final outcome (0 once the campaign is cancelled or done).
    public var remaining: Int64 {
        guard status != .cancelled && status != .expired else { return 0 }
        return max(0, total - skipped - sent - bounced - failed - cancelled)
    }

    /// How a campaign that went out to the end (`sent`) went: `complete` (every
    /// recipient delivered or skipped), `partial` (some delivered, some bounced or
    /// failed), `failed` (none delivered). nil in every other status (a cancelled or
    /// expired campaign says so in its status).
    public var completion: String? {
        guard status == .sent else { return nil }
        if bounced + failed + cancelledTotal == 0 { return "complete" }
        return sent > 0 ? "partial" : "failed"
    }
}

/// Campaigns, tenant-scoped like ``ListStore``: another tenant's campaign id behaves like
/// one that does not exist (nil).
///
/// Status machine: `draft` → (`send`) `sending` → `sent` when every chunk is expanded
/// and every recipient has a final outcome (delivered, bounced, failed, cancelled,
/// skipped; ``finishCompleted(_:campaigns:)``), with `finished_at` at the last outcome;
/// `sending` ⇄ `paused` (`pause`/`resume`, as long as mail waits); `draft`, `scheduled`,
/// `sending`, `paused` → `cancelled`. Only a draft can be edited. A transition from any other state is a
/// ``StoreError`` `.conflict` that names the current state.
public struct CampaignStore: Sendable {
    public let db: PostgresClient
    /// Recipients per expansion chunk (``CampaignExpander`` claims a chunk at a time).
    public let chunkSize: Int

    public init(_ db: PostgresClient, chunkSize: Int = 1000) {
        self.db = db
        self.chunkSize = max(1, chunkSize)
    }

    static let columns = """
        c.id, c.tenant_id, c.name, c.from_address, c.reply_to, c.subject, c.html, c.text, c.list_ids, c.status,
        c.started_at, c.finished_at, c.created_at, c.updated_at, c.segment, c.send_rate, c.send_window, c.time_zone,
        c.max_attempts, c.track_opens, c.track_clicks
        """

    // MARK: - Create, read, update

    public func create(tenant: TenantID, _ input: CampaignInput) async throws -> Campaign {
        guard let name = input.name else { throw StoreError(.invalid, "name: this field is required") }
        guard let from = input.from else { throw StoreError(.invalid, "from: this field is required") }
        guard let subject = input.subject else { throw StoreError(.invalid, "subject: this field is required") }
        let fields = try Self.validate(name: name, from: from, replyTo: input.replyTo.flatMap(Self.nonEmpty),
                                       subject: subject, html: input.html.flatMap(Self.nonEmpty),
                                       text: input.text.flatMap(Self.nonEmpty), listIDs: input.listIDs ?? [],
                                       segment: input.segment ?? nil, sendRate: input.sendRate ?? nil,
                                       sendWindow: input.sendWindow ?? nil, maxAttempts: input.maxAttempts ?? nil)
        let tenantParameter = tenant.parameter
        return try await db.transaction { connection in
            try Self.checkLists(connection, tenant: tenantParameter, fields.listIDs)
            let row = try connection.query("""
                INSERT INTO campaigns AS c (tenant_id, name, from_address, reply_to, subject, html, text, list_ids,
                                            segment, segment_path, send_rate, send_window, max_attempts,
                                            track_opens, track_clicks)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint[], $9::jsonb, $10::jsonpath, $11, $12::jsonb,
                        $13::int, $14::boolean, $15::boolean)
                RETURNING \(Self.columns)
                """, [tenantParameter, fields.name, fields.from, fields.replyTo, fields.subject, fields.html,
                      fields.text, PGText.array(fields.listIDs)] + fields.policyParameters
                    + [String(input.trackOpens ?? false), String(input.trackClicks ?? false)]).rows[0]
            return try Self.campaign(row)
        }
    }

    public func campaign(tenant: TenantID, id: Int64) async throws -> Campaign? {
        try await db.query("SELECT \(Self.columns) FROM campaigns c WHERE c.tenant_id = $1 AND c.id = $2",
                           [tenant.parameter, String(id)]).first.map(Self.campaign)
    }

    /// A campaign by id alone, for the expander (which works for every tenant).
    public func campaign(id: Int64) async throws -> Campaign? {
        try await db.query("SELECT \(Self.columns) FROM campaigns c WHERE c.id = $1", [String(id)])
            .first.map(Self.campaign)
    }

    /// The tenant's campaigns in id order, `limit` at a time after the id `after`.
    public func campaigns(tenant: TenantID, after: Int64? = nil, limit: Int = 100) async throws -> [Campaign] {
        try await db.query("""
            SELECT \(Self.columns) FROM campaigns c
            WHERE c.tenant_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3
            """, [tenant.parameter, String(after ?? 0), String(max(1, min(limit, 1000)))]).map(Self.campaign)
    }

    /// Changes a draft. nil when there is no such campaign; `.conflict` when it is no
    /// longer a draft.
    public func update(tenant: TenantID, id: Int64, _ input: CampaignInput) async throws -> Campaign? {
        guard let current = try await campaign(tenant: tenant, id: id) else { return nil }
        guard current.status == .draft else {
            throw StoreError(.conflict, "campaign \(id) is \(current.status.rawValue); only a draft can be changed")
        }
        let fields = try Self.validate(
            name: input.name ?? current.name, from: input.from ?? current.from,
            replyTo: input.replyTo.map(Self.nonEmpty) ?? current.replyTo, subject: input.subject ?? current.subject,
            html: input.html.map(Self.nonEmpty) ?? current.html, text: input.text.map(Self.nonEmpty) ?? current.text,
            listIDs: input.listIDs ?? current.listIDs, segment: input.segment ?? current.segment,
            sendRate: input.sendRate ?? current.sendRate, sendWindow: input.sendWindow ?? current.sendWindow,
            maxAttempts: input.maxAttempts ?? current.maxAttempts)
        let tenantParameter = tenant.parameter
        let row: [String?]?? = try await db.transaction { connection in
            try Self.checkLists(connection, tenant: tenantParameter, fields.listIDs)
            let rows = try connection.query("""
                UPDATE campaigns AS c SET name = $3, from_address = $4, reply_to = $5, subject = $6, html = $7,
                    text = $8, list_ids = $9::bigint[], segment = $10::jsonb, segment_path = $11::jsonpath,
                    send_rate = $12, send_window = $13::jsonb, max_attempts = $14::int, track_opens = $15::boolean,
                    track_clicks = $16::boolean, updated_at = now()
                WHERE c.tenant_id = $1 AND c.id = $2 AND c.status = 'draft' RETURNING \(Self.columns)
                """, [tenantParameter, String(id), fields.name, fields.from, fields.replyTo, fields.subject,
                      fields.html, fields.text, PGText.array(fields.listIDs)] + fields.policyParameters
                    + [String(input.trackOpens ?? current.trackOpens),
                       String(input.trackClicks ?? current.trackClicks)]).rows
            return rows.first
        }
        guard let row = row ?? nil else {
            throw StoreError(.conflict, "campaign \(id) is no longer a draft; only a draft can be changed")
        }
        return try Self.campaign(row)
    }

    // MARK: - Status machine

    /// `draft` → `sending`: computes the recipient set (active subscribers of the
    /// campaign's lists, not suppressed for the tenant, each once), records it as chunks
    /// of subscriber-id ranges for ``CampaignExpander``, and sets `total`. One
    /// transaction: either all of that happens or none. nil when there is no campaign.
    public func send(tenant: TenantID, id: Int64) async throws -> Campaign? {
        let parameters = [tenant.parameter, String(id), String(chunkSize)]
        let result: Result<[String?], StoreError>? = try await db.transaction { connection in
            guard let row = try connection.query("""
                SELECT \(Self.columns) FROM campaigns c WHERE c.tenant_id = $1 AND c.id = $2 FOR UPDATE
                """, [parameters[0], parameters[1]]).rows.first
            else { return nil }
            let current = try Self.campaign(row)
            guard current.status == .draft || current.status == .scheduled else {
                return .failure(StoreError(.conflict, "campaign \(id) is \(current.status.rawValue); only a draft can be sent"))
            }
            guard !current.listIDs.isEmpty else {
                return .failure(StoreError(.invalid, "list_ids: the campaign has no lists to send to"))
            }
            try connection.execute("""
                WITH r AS (\(Self.recipientsSQL(tenant: "$1", lists: "c.list_ids")) AND c.id = $2),
                numbered AS (SELECT id, (row_number() OVER (ORDER BY id) - 1) / $3::bigint AS chunk_no FROM r)
                INSERT INTO campaign_chunks (tenant_id, campaign_id, chunk_no, first_subscriber_id, last_subscriber_id)
                SELECT $1, $2, chunk_no, min(id), max(id) FROM numbered GROUP BY chunk_no
                """, parameters)
            try connection.execute("""
                INSERT INTO campaign_counters (tenant_id, campaign_id, total)
                SELECT $1, $2, count(*) FROM (\(Self.recipientsSQL(tenant: "$1", lists: "c.list_ids")) AND c.id = $2) r
                ON CONFLICT (campaign_id) DO UPDATE SET total = excluded.total, updated_at = now()
                """, [parameters[0], parameters[1]])
            let updated = try connection.query("""
                UPDATE campaigns AS c SET status = 'sending', started_at = clock_timestamp(), updated_at = now()
                WHERE c.tenant_id = $1 AND c.id = $2 RETURNING \(Self.columns)
                """, [parameters[0], parameters[1]]).rows[0]
            return .success(updated)
        }
        guard let result else { return nil }
        return try Self.campaign(try result.get())
    }

    /// The recipient set of a campaign `c` joined in the query: active subscribers of
    /// its lists, not suppressed, each once (a SELECT of `s.id` and the subscriber
    /// columns; callers append conditions with AND).
    public static func recipientsSQL(tenant: String, lists: String, columns: String = "s.id") -> String {
        """
        SELECT \(columns) FROM subscribers s JOIN campaigns c ON c.tenant_id = s.tenant_id
        WHERE s.tenant_id = \(tenant) AND s.status = 'active'
          AND (c.segment_path IS NULL OR s.attributes @@ c.segment_path)
          AND EXISTS (SELECT 1 FROM list_members m WHERE m.tenant_id = s.tenant_id AND m.subscriber_id = s.id
                      AND m.list_id = ANY (\(lists)))
          AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.tenant_id = s.tenant_id AND x.email = s.email)
        """
    }

    public func pause(tenant: TenantID, id: Int64) async throws -> Campaign? {
        try await transition(tenant: tenant, id: id, from: [.sending], to: .paused, verb: "paused")
    }

    /// `paused` → `sending`; straight on to `sent` when nothing waits any more (every
    /// outcome came in while it was paused).
    public func resume(tenant: TenantID, id: Int64) async throws -> Campaign? {
        guard let resumed = try await transition(tenant: tenant, id: id, from: [.paused], to: .sending,
                                                 verb: "resumed")
        else { return nil }
        guard try await finishIfComplete(id: id) else { return resumed }
        return try await campaign(tenant: tenant, id: id)
    }

    /// → `cancelled`, and in the same transaction every recipient still waiting
    /// (`queued`, `deferred`, `held` by the postmaster) is recorded as `cancelled`. The
    /// mail itself is removed by each node's campaign control pass, from `queue/` and
    /// `hold/` alike (a late delivery still counts as sent).
    public func cancel(tenant: TenantID, id: Int64) async throws -> Campaign? {
        let parameters = [tenant.parameter, String(id)]
        let row: [String?]? = try await db.transaction { connection in
            guard let row = try connection.query("""
                UPDATE campaigns AS c SET status = 'cancelled', updated_at = now(), finished_at = now()
                WHERE c.tenant_id = $1 AND c.id = $2 AND c.status IN ('draft', 'scheduled', 'sending', 'paused')
                RETURNING \(Self.columns)
                """, parameters).rows.first
            else { return nil }
            let changed = try connection.query("""
                WITH old AS (
                    SELECT campaign_id, subscriber_id, state FROM campaign_recipients
                    WHERE tenant_id = $1 AND campaign_id = $2 AND state IN ('queued', 'deferred', 'held') FOR UPDATE
                ), changed AS (
                    UPDATE campaign_recipients AS r SET state = 'cancelled', reason = 'campaign cancelled',
                        updated_at = now()
                    FROM old WHERE r.campaign_id = old.campaign_id AND r.subscriber_id = old.subscriber_id
                    RETURNING old.state
                )
                SELECT count(*), count(*) FILTER (WHERE state = 'deferred'), count(*) FILTER (WHERE state = 'held')
                FROM changed
                """, parameters).rows[0]
            try connection.execute("""
                UPDATE campaign_counters SET cancelled = cancelled + $3, deferred = greatest(deferred - $4, 0),
                    held = greatest(held - $5, 0), updated_at = now()
                WHERE tenant_id = $1 AND campaign_id = $2
                """, parameters + [changed[0], changed[1], changed[2]])
            return row
        }
        if let row { return try Self.campaign(row) }
        guard let current = try await campaign(tenant: tenant, id: id) else { return nil }
        throw StoreError(.conflict, "campaign \(id) is \(current.status.rawValue) and cannot be cancelled")
    }

    func transition(tenant: TenantID, id: Int64, from: Set<CampaignStatus>, to: CampaignStatus,
                    verb: String) async throws -> Campaign? {
        let allowed = "{" + from.map(\.rawValue).sorted().joined(separator: ",") + "}"
        let finished = to == .cancelled ? ", finished_at = now()" : ""
        if let row = try await db.query("""
            UPDATE campaigns AS c SET status = $3, updated_at = now()\(finished)
            WHERE c.tenant_id = $1 AND c.id = $2 AND c.status = ANY ($4::text[]) RETURNING \(Self.columns)
            """, [tenant.parameter, String(id), to.rawValue, allowed]).first {
            return try Self.campaign(row)
        }
        guard let current = try await campaign(tenant: tenant, id: id) else { return nil }
        throw StoreError(.conflict, "campaign \(id) is \(current.status.rawValue) and cannot be \(verb)")
    }

    /// `sending` → `sent` when it is complete (see ``finishCompleted(_:campaigns:)``).
    /// True when it changed.
    @discardableResult
    public func finishIfComplete(id: Int64) async throws -> Bool {
        try await db.transaction { connection in try Self.finishCompleted(connection, campaigns: [id]) } == 1
    }

    /// Marks `sent` each of `campaigns` that is `sending`, has no chunk left to expand
    /// and no recipient left waiting (`pending`, `queued`, `deferred`, `held`), with
    /// `finished_at` at its last recipient outcome. Returns how many changed. Cheap per
    /// campaign (index lookups), so the stats recorder calls it after every batch.
    @discardableResult
    public static func finishCompleted(_ connection: PostgresConnection, campaigns: [Int64]) throws -> Int {
        guard !campaigns.isEmpty else { return 0 }
        return try connection.execute("""
            UPDATE campaigns AS c SET status = 'sent', updated_at = now(),
                finished_at = coalesce((SELECT max(r.updated_at) FROM campaign_recipients r
                                        WHERE r.campaign_id = c.id), now())
            WHERE c.id = ANY ($1::bigint[]) AND c.status = 'sending'
              AND NOT EXISTS (SELECT 1 FROM campaign_chunks k WHERE k.campaign_id = c.id AND NOT k.done)
              AND NOT EXISTS (SELECT 1 FROM campaign_recipients r WHERE r.campaign_id = c.id
                              AND r.state IN ('pending', 'queued', 'deferred', 'held'))
            """, [PGText.array(campaigns)])
    }

    public func stats(tenant: TenantID, id: Int64) async throws -> CampaignStats? {
        guard let row = try await db.query("""
            SELECT c.status, coalesce(n.total, 0), coalesce(n.expanded, 0), coalesce(n.skipped, 0),
                   coalesce(n.sent, 0), coalesce(n.deferred, 0), coalesce(n.bounced, 0), coalesce(n.failed, 0),
                   coalesce(n.unsubscribed, 0), coalesce(n.cancelled, 0), coalesce(n.held, 0),
                   (SELECT count(*) FROM campaign_chunks k WHERE k.campaign_id = c.id),
                   (SELECT count(*) FROM campaign_chunks k WHERE k.campaign_id = c.id AND k.done),
                   c.send_rate, c.send_window, c.time_zone, c.started_at, c.finished_at, coalesce(n.complained, 0),
                   t.opens, t.unique_opens, t.clicks, t.unique_clicks
            FROM campaigns c LEFT JOIN campaign_counters n ON n.campaign_id = c.id
            CROSS JOIN LATERAL (
                SELECT count(*) FILTER (WHERE e.kind = 'open') AS opens,
                       count(DISTINCT e.subscriber_id) FILTER (WHERE e.kind = 'open') AS unique_opens,
                       count(*) FILTER (WHERE e.kind = 'click') AS clicks,
                       count(DISTINCT e.subscriber_id) FILTER (WHERE e.kind = 'click') AS unique_clicks
                FROM tracking_events e WHERE e.campaign_id = c.id
            ) t
            WHERE c.tenant_id = $1 AND c.id = $2
            """, [tenant.parameter, String(id)]).first
        else { return nil }
        func n(_ i: Int) throws -> Int64 { try PGText.require(row, i, PGText.int64) }
        return CampaignStats(
            status: try PGText.require(row, 0, CampaignStatus.init(rawValue:)), total: try n(1), expanded: try n(2),
            skipped: try n(3), sent: try n(4), deferred: try n(5), bounced: try n(6), failed: try n(7),
            unsubscribed: try n(8), cancelled: try n(9), held: try n(10), complained: try n(18), chunks: try n(11),
            chunksDone: try n(12),
            sendRate: row[13], sendWindow: try PGText.optional(row, 14, CampaignSendWindow.init(jsonText:)),
            timeZone: try PGText.require(row, 15), startedAt: PGText.timestamp(row[16]),
            finishedAt: PGText.timestamp(row[17]), opens: try n(19), uniqueOpens: try n(20), clicks: try n(21),
            uniqueClicks: try n(22))
    }

    // MARK: - Validation

    struct Fields {
        var name: String
        var from: String
        var replyTo: String?
        var subject: String
        var html: String?
        var text: String?
        var listIDs: [Int64]
        var segment: Segment?
        var sendRate: String?
        var sendWindow: CampaignSendWindow?
        var maxAttempts: Int?

        /// segment, segment_path, send_rate, send_window, max_attempts as query parameters.
        var policyParameters: [String?] {
            [segment?.jsonText, segment?.jsonPath, sendRate, sendWindow?.jsonText, maxAttempts.map(String.init)]
        }
    }

    static func nonEmpty(_ text: String) -> String? {
        text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : text
    }

    /// Checks everything that does not need the database. Template problems throw the
    /// ``TemplateValidationError`` (each issue names field, line and variable).
    static func validate(name: String, from: String, replyTo: String?, subject: String, html: String?, text: String?,
                         listIDs: [Int64], segment: Segment?, sendRate: String?,
                         sendWindow: CampaignSendWindow?, maxAttempts: Int? = nil) throws -> Fields {
        let name = try NameRules.validate(name, what: "name", limit: 500)
        do {
            _ = try MailAddress(parsing: from)
        } catch {
            throw StoreError(.invalid, "from: \(error)")
        }
        if let replyTo {
            do {
                _ = try MailAddress(parsing: replyTo)
            } catch {
                throw StoreError(.invalid, "reply_to: \(error)")
            }
        }
        guard subject.utf8.count <= 2000 else { throw StoreError(.invalid, "subject: longer than 2000 octets") }
        for (field, value) in [("html", html), ("text", text)] {
            if let value, value.utf8.count > 1_000_000 {
                throw StoreError(.invalid, "\(field): longer than 1,000,000 octets")
            }
        }
        guard listIDs.count <= 100 else { throw StoreError(.invalid, "list_ids: at most 100 lists") }
        if let sendRate { try CampaignSendWindow.validateRate(sendRate) }
        if let sendWindow { try sendWindow.validate() }
        if let maxAttempts, !(1...100).contains(maxAttempts) {
            throw StoreError(.invalid, "max_attempts: from 1 to 100 (got \(maxAttempts))")
        }
        _ = try CampaignTemplate(subject: subject, html: html, text: text)
        var seen = Set<Int64>()
        return Fields(name: name, from: from, replyTo: replyTo, subject: subject, html: html, text: text,
                      listIDs: listIDs.filter { seen.insert($0).inserted }, segment: segment, sendRate: sendRate,
                      sendWindow: sendWindow, maxAttempts: maxAttempts)
    }

    /// Every list must be the tenant's (another tenant's list reads as not found).
    static func checkLists(_ connection: PostgresConnection, tenant: String, _ ids: [Int64]) throws {
        guard !ids.isEmpty else { return }
        let found = Set(try connection.query("SELECT id FROM lists WHERE tenant_id = $1 AND id = ANY ($2::bigint[])",
                                             [tenant, PGText.array(ids)]).rows.map { try PGText.require($0, 0, PGText.int64) })
        if let missing = ids.first(where: { !found.contains($0) }) {
            throw StoreError(.invalid, "list_ids: list \(missing) not found")
        }
    }

    /// A row of ``columns``. The segment and send window were validated when saved, so
    /// one that no longer reads is an error, not a campaign silently without it.
    static func campaign(_ row: [String?]) throws -> Campaign {
        Campaign(id: try PGText.require(row, 0, PGText.int64),
                 tenant: TenantID(try PGText.require(row, 1, PGText.int64)), name: try PGText.require(row, 2),
                 from: try PGText.require(row, 3), replyTo: row[4], subject: try PGText.require(row, 5), html: row[6],
                 text: row[7], listIDs: PGText.int64Array(row[8]),
                 segment: try PGText.optional(row, 14, Segment.init(jsonText:)), sendRate: row[15],
                 sendWindow: try PGText.optional(row, 16, CampaignSendWindow.init(jsonText:)),
                 maxAttempts: try PGText.optional(row, 18, { Int($0) }),
                 trackOpens: row[19] == "t", trackClicks: row[20] == "t",
                 timeZone: try PGText.require(row, 17), status: try PGText.require(row, 9, CampaignStatus.init(rawValue:)),
                 startedAt: PGText.timestamp(row[10]), finishedAt: PGText.timestamp(row[11]),
                 createdAt: try PGText.require(row, 12, PGText.timestamp),
                 updatedAt: try PGText.require(row, 13, PGText.timestamp))
    }
}
