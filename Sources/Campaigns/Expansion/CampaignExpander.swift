import CampaignStore
import Foundation
import Logging
import Postgres
import Rendering
import Spool

/// What one ``CampaignExpander/run(campaign:)`` did.
public struct ExpansionReport: Sendable, Equatable {
    /// Chunks this run expanded and marked done.
    public var chunks = 0
    /// Messages this run committed to the spool (new, i.e. not already there).
    public var committed = 0
    /// Messages found already in the spool (a replayed chunk after a crash).
    public var alreadySpooled = 0
    /// Recipients whose message could not be rendered (recorded as `skipped`).
    public var skipped = 0
    /// The campaign's status when the run ended.
    public var status: CampaignStatus?
}

/// Expands a `sending` campaign into one message per recipient in the spool.
///
/// The work is the campaign's chunks (subscriber-id ranges planned by
/// ``CampaignStore/send(tenant:id:)``). A run claims one chunk at a time with
/// `SELECT … FOR UPDATE SKIP LOCKED` (setting `claimed_by`/`claimed_at`, a lease of
/// ``claimTimeout``), so several expanders — other tasks, other Herald processes on the
/// same database — share a campaign. For each chunk it:
/// 1. streams the chunk's recipients in id order (active, on the campaign's lists, not
///    suppressed, and without a `campaign_recipients` row yet);
/// 2. renders each message, with a signed unsubscribe link
///    (`<publicURL>/u/<UnsubscribeToken>`) in the body variable and `List-Unsubscribe`;
/// 3. commits them all to the spool concurrently, each under a queue id derived from
///    (campaign, subscriber) — ``deterministicQueueID(campaign:subscriber:startedMicros:)``
///    — so a second commit of the same message is refused by the spool
///    (`SpoolError.isAlreadyExists`, counted as already expanded);
/// 4. only then, in one transaction, records the `campaign_recipients` rows (unique on
///    campaign and subscriber, `ON CONFLICT DO NOTHING`), marks the chunk done and adds
///    the newly recorded rows to `campaign_counters.expanded`.
/// A crash between 3 and 4 replays the chunk: the spool refuses the duplicates and the
/// rows are written then. The campaign's status is read before each chunk and every
/// ``statusInterval`` within one, so a `pause` or `cancel` made on any node stops the
/// expansion within a fraction of a second: the messages being committed finish, their
/// rows are recorded, and the chunk is given back unfinished for whoever resumes it.
public actor CampaignExpander {
    public nonisolated let db: PostgresClient
    public nonisolated let store: CampaignStore
    /// The tenants' submission quotas: a chunk expands only as far as its tenant's
    /// quota has room, then waits.
    public nonisolated let limits: TenantLimitsStore
    public nonisolated let writer: SpoolWriter
    /// Base of unsubscribe links (`http.public_url`), e.g. `https://mail.example.com`.
    public nonisolated let publicURL: String
    /// The unsubscribe-token key (at least ``UnsubscribeToken/minimumKeyLength`` bytes).
    public nonisolated let secret: [UInt8]
    /// The domain of `Message-ID`s.
    public nonisolated let hostname: String
    /// This expander's name in `campaign_chunks.claimed_by`.
    public nonisolated let node: String
    /// A chunk claimed longer ago than this and not done is taken over (its claimer is
    /// presumed dead).
    public nonisolated let claimTimeout: TimeInterval
    /// Spool commits in flight at once.
    public nonisolated let concurrency: Int
    /// How often a chunk being expanded looks at its campaign's status (a pause or
    /// cancel stops it within this time rather than at the end of the chunk).
    public nonisolated let statusInterval: Duration
    /// `[bounce] domains`: a campaign whose From domain has one of them as its return-path
    /// domain (``BounceSettings/returnPathDomain(for:among:)``) sends with it.
    public nonisolated let returnPathDomains: [String]
    let logger: Logger

    private var running: [Int64: Task<ExpansionReport, any Error>] = [:]

    public init(db: PostgresClient, writer: SpoolWriter, publicURL: String, secret: [UInt8], hostname: String,
                node: String = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UUID().uuidString.prefix(8))",
                claimTimeout: TimeInterval = 300, concurrency: Int = 128, chunkSize: Int = 1000,
                statusInterval: Duration = .milliseconds(250), returnPathDomains: [String] = [],
                logger: Logger = Logger(label: "herald.campaigns.expander")) {
        precondition(secret.count >= UnsubscribeToken.minimumKeyLength, "unsubscribe secret too short")
        self.db = db
        self.store = CampaignStore(db, chunkSize: chunkSize)
        self.limits = TenantLimitsStore(db)
        self.writer = writer
        var base = publicURL
        while base.hasSuffix("/") { base.removeLast() }
        self.publicURL = base
        self.secret = secret
        self.hostname = hostname
        self.node = node
        self.claimTimeout = claimTimeout
        self.concurrency = max(1, concurrency)
        self.statusInterval = statusInterval
        self.returnPathDomains = returnPathDomains.map { $0.lowercased() }
        self.logger = logger
    }

    /// Starts `run(campaign:)` in the background unless this expander already runs it.
    public func start(campaign id: Int64) {
        guard running[id] == nil else { return }
        let logger = self.logger
        running[id] = Task {
            defer { self.finished(id) }
            do {
                return try await self.run(campaign: id)
            } catch {
                logger.error("campaign expansion failed", metadata: ["campaign": "\(id)", "error": "\(error)"])
                throw error
            }
        }
    }

    private func finished(_ id: Int64) { running[id] = nil }

    /// Waits for a background expansion started with `start(campaign:)`.
    public func wait(campaign id: Int64) async throws -> ExpansionReport? {
        guard let task = running[id] else { return nil }
        return try await task.value
    }

    /// Starts every campaign that is `sending` (after a restart: chunks a dead process
    /// held are taken over once their claim is older than ``claimTimeout``).
    public func resumeAll() async throws {
        for row in try await db.query("SELECT id FROM campaigns WHERE status = 'sending' ORDER BY id") {
            start(campaign: try PGText.require(row, 0, PGText.int64))
        }
    }

    /// Expands the campaign's chunks until none is left to claim, or the campaign is no
    /// longer `sending` (paused, cancelled). When every chunk is done and every message
    /// already has its final outcome, the campaign is `sent` (``CampaignStore/finishIfComplete(id:)``).
    public func run(campaign id: Int64) async throws -> ExpansionReport {
        var report = ExpansionReport()
        guard let row = try await db.query("""
            SELECT (extract(epoch FROM started_at) * 1000000)::bigint FROM campaigns WHERE id = $1
            """, [String(id)]).first, let campaign = try await store.campaign(id: id)
        else { return report }
        report.status = campaign.status
        guard campaign.status == .sending else { return report }
        // A campaign is `sending` only once started: its `started_at` is set.
        let startedMicros = try PGText.require(row, 0, { PGText.int64($0).flatMap(UInt64.init(exactly:)) },
                                               as: "started_at in microseconds")
        let renderer = try makeRenderer(campaign)
        while true {
            try Task.checkCancellation()
            let status = try await status(campaign: id)
            report.status = status
            guard status == .sending else { return report }
            guard let chunk = try await claim(campaign: id) else { break }
            do {
                if let until = try await expand(chunk, campaign: campaign, renderer: renderer,
                                                startedMicros: startedMicros, report: &report) {
                    // The tenant's quota is used up: the chunk was given back; wait for
                    // room (still `sending`, and a pause or cancel still ends the wait).
                    report.status = try await waitForQuota(until: until, campaign: campaign)
                    guard report.status == .sending else { return report }
                }
            } catch {
                // Give the chunk back at once; what was spooled is found again on replay.
                _ = try? await db.execute("""
                    UPDATE campaign_chunks SET claimed_by = NULL, claimed_at = NULL
                    WHERE campaign_id = $1 AND chunk_no = $2 AND claimed_by = $3 AND NOT done
                    """, [String(id), String(chunk.number), node])
                throw error
            }
        }
        if try await store.finishIfComplete(id: id) { report.status = .sent }
        return report
    }

    /// Sleeps until `until` (when the quota has room again), looking every
    /// ``statusInterval`` (at most each second) at the campaign's status and at the
    /// quota (the operator may raise it); returns the status when it is no longer
    /// `sending`, or `sending` once there is room.
    func waitForQuota(until: Date, campaign: Campaign) async throws -> CampaignStatus? {
        logger.info("campaign expansion waits for its tenant's quota",
                    metadata: ["campaign": "\(campaign.id)", "until": "\(until)"])
        while Date() < until {
            try await Task.sleep(for: min(max(statusInterval, .milliseconds(100)), .seconds(1)))
            let status = try await status(campaign: campaign.id)
            if status != .sending { return status }
            let room = try await limits.reserve(tenant: campaign.tenant, count: 1, partial: true, dryRun: true)
            if room.granted > 0 { break }
        }
        return .sending
    }

    func status(campaign id: Int64) async throws -> CampaignStatus? {
        try await db.query("SELECT status FROM campaigns WHERE id = $1", [String(id)])
            .first.map { try PGText.require($0, 0, CampaignStatus.init(rawValue:)) }
    }

    struct Chunk: Sendable {
        var number: Int
        var first: Int64
        var last: Int64
        /// A `retry-failed` chunk: only its recipients marked `pending` are expanded.
        var retry = false
        /// The time part of its messages' queue ids (microseconds), when not the campaign's start.
        var idMicros: UInt64?
    }

    /// Claims the next chunk nobody is working on, whose claim expired, or that this node
    /// itself held before a restart (`node` is stable across restarts when the caller
    /// names it after the host and the spool, as `herald serve` does: one process per spool).
    func claim(campaign id: Int64) async throws -> Chunk? {
        try await db.query("""
            UPDATE campaign_chunks k SET claimed_by = $2, claimed_at = now()
            WHERE (k.campaign_id, k.chunk_no) = (
                SELECT campaign_id, chunk_no FROM campaign_chunks
                WHERE campaign_id = $1 AND NOT done
                  AND (claimed_by IS NULL OR claimed_by = $2
                       OR claimed_at < now() - make_interval(secs => $3::double precision))
                ORDER BY chunk_no LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING k.chunk_no, k.first_subscriber_id, k.last_subscriber_id, k.retry,
                      (extract(epoch FROM k.id_time) * 1000000)::bigint
            """, [String(id), node, String(claimTimeout)]).first.map {
            Chunk(number: try PGText.require($0, 0, PGText.int), first: try PGText.require($0, 1, PGText.int64),
                  last: try PGText.require($0, 2, PGText.int64), retry: try PGText.require($0, 3, PGText.boolean),
                  idMicros: try PGText.optional($0, 4, { PGText.int64($0).flatMap(UInt64.init(exactly:)) },
                                                as: "id_time in microseconds"))
        }
    }

    public func makeRenderer(_ campaign: Campaign) throws -> MessageRenderer {
        let template = try CampaignTemplate(subject: campaign.subject, html: campaign.html, text: campaign.text)
        return try MessageRenderer(template: template, campaign: campaign.templateFields,
                                   from: try MailAddress(parsing: campaign.from),
                                   replyTo: try campaign.replyTo.map { try MailAddress(parsing: $0) },
                                   messageIDDomain: hostname)
    }

    /// One recipient's outcome, recorded in `campaign_recipients`.
    struct Outcome: Sendable {
        var subscriber: Int64
        var queueID: String?
        var skippedReason: String?
        var alreadySpooled = false
    }

    struct Recipient: Sendable {
        var id: Int64
        var list: Int64
        var variables: RecipientVariables
    }

    /// Expands one claimed chunk; returns when to try again when the tenant's quota had
    /// no room for any of its recipients (the chunk was given back untouched). A quota
    /// with room for some expands those and gives the chunk back for the rest.
    private func expand(_ chunk: Chunk, campaign: Campaign, renderer: MessageRenderer, startedMicros: UInt64,
                        report: inout ExpansionReport) async throws -> Date? {
        let tenant = campaign.tenant
        // 1. The chunk's recipients not expanded yet, in keyset (id) order.
        var recipients: [Recipient] = []
        let sql = CampaignStore.recipientsSQL(tenant: "$1", lists: "c.list_ids", columns: """
            s.id, s.email, s.name, s.first_name, s.last_name, s.attributes,
            (SELECT min(m.list_id) FROM list_members m WHERE m.tenant_id = s.tenant_id AND m.subscriber_id = s.id
             AND m.list_id = ANY (c.list_ids))
            """) + """
             AND c.id = $2 AND s.id BETWEEN $3 AND $4
              AND \(chunk.retry ? "" : "NOT ")EXISTS (SELECT 1 FROM campaign_recipients r
                  WHERE r.campaign_id = c.id AND r.subscriber_id = s.id\(chunk.retry ? " AND r.state = 'pending'" : ""))
            ORDER BY s.id
            """
        for try await row in db.stream(sql, [tenant.parameter, String(campaign.id), String(chunk.first),
                                             String(chunk.last)]) {
            // Column 6, the subscriber's first list among the campaign's, is never NULL:
            // a recipient is on one of them.
            recipients.append(Recipient(
                id: try PGText.require(row, 0, PGText.int64), list: try PGText.require(row, 6, PGText.int64),
                variables: RecipientVariables(email: try PGText.require(row, 1), firstName: row[3], lastName: row[4],
                                              name: row[2], attributes: try SubscriberStore.attributes(row, 5))))
        }
        // The tenant's quota: as many recipients as it has room for now, in id order.
        let quota = try await limits.reserve(tenant: tenant, count: recipients.count, partial: true)
        let quotaLimited = quota.granted < recipients.count
        if quota.granted == 0 && quotaLimited {
            try await db.execute("""
                UPDATE campaign_chunks SET claimed_by = NULL, claimed_at = NULL
                WHERE campaign_id = $1 AND chunk_no = $2 AND claimed_by = $3 AND NOT done
                """, [String(campaign.id), String(chunk.number), node])
            return quota.retryAt ?? Date().addingTimeInterval(60)
        }
        recipients.removeLast(recipients.count - quota.granted)
        let idMicros = chunk.idMicros ?? startedMicros
        let rateKey = "campaign:\(campaign.id)"
        // Validated when the campaign was saved; the envelope carries the typed rate.
        let sendRate = campaign.sendRate.flatMap(Rate.init)
        let maxAttempts = campaign.maxAttempts
        let sendWindow = campaign.sendWindow
        let campaignZone = campaign.timeZone

        // 2 and 3. Render and commit concurrently (bounded).
        let recipientList = recipients
        let writer = self.writer
        let publicURL = self.publicURL
        let secret = self.secret
        let campaignText = String(campaign.id)
        let tenantText = tenant.description
        let sender = renderer.from.address
        let returnPath = sender.split(separator: "@").last.flatMap {
            BounceSettings.returnPathDomain(for: String($0), among: returnPathDomains)
        }
        let now = Date()
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(recipients.count)
        // A pause or cancel made anywhere stops the chunk within ``statusInterval``:
        // what is being rendered and committed finishes, nothing new is started.
        var stopped = false
        var lastStatusCheck = ContinuousClock.now
        let failure = await SpoolWriter.concurrently(count: recipientList.count, limit: concurrency) { index in
            let recipient = recipientList[index]
            return { () async throws -> Outcome in
                let token = UnsubscribeToken.make(subscriber: String(recipient.id), list: String(recipient.list),
                                                  campaign: campaignText, tenant: tenantText, key: secret)
                let url = publicURL + "/u/" + token
                var variables = recipient.variables
                variables.unsubscribeURL = url
                let message: RenderedMessage
                do {
                    message = try renderer.render(recipient: variables, listUnsubscribe: ListUnsubscribe(url: url),
                                                  date: now,
                                                  htmlTransform: CampaignExpander.tracking(
                                                    campaign, tenant: tenantText, subscriber: recipient.id,
                                                    publicURL: publicURL, key: secret))
                } catch {
                    return Outcome(subscriber: recipient.id, skippedReason: "\(error)")
                }
                let id = CampaignExpander.deterministicQueueID(campaign: campaign.id, subscriber: recipient.id,
                                                               startedMicros: idMicros)
                let window = sendWindow?.window(campaignZone: campaignZone, attributes: recipient.variables.attributes)
                let policy = sendRate == nil && window == nil && maxAttempts == nil ? nil
                    : SendPolicy(rate: sendRate, rateKey: sendRate == nil ? nil : rateKey, window: window,
                                 maxAttempts: maxAttempts)
                let envelope = Envelope(
                    id: id, arrival: now,
                    sender: CampaignExpander.bounceAddress(sender, campaign: campaign.id, subscriber: recipient.id,
                                                           returnPathDomain: returnPath),
                    origin: EnvelopeOrigin(listener: "campaign", clientAddress: "expander",
                                           authenticatedUser: tenantText, helo: nil, tls: false),
                    recipients: [EnvelopeRecipient(address: recipient.variables.email)], body: "8BITMIME",
                    smtputf8: message.needsSMTPUTF8, tenant: tenantText, campaign: campaignText, sendPolicy: policy)
                do {
                    _ = try await writer.commit(message.bytes, envelope)
                    return Outcome(subscriber: recipient.id, queueID: id.rawValue)
                } catch let error as SpoolError where error.isAlreadyExists {
                    return Outcome(subscriber: recipient.id, queueID: id.rawValue, alreadySpooled: true)
                }
            }
        } received: { _, outcome in
            outcomes.append(outcome)
            if !stopped, ContinuousClock.now - lastStatusCheck >= statusInterval {
                lastStatusCheck = .now
                if let status = try? await self.status(campaign: campaign.id), status != .sending { stopped = true }
            }
            return !stopped
        }
        // Counted but not queued now (unrenderable, already spooled before a crash, or
        // not reached): given back.
        let fresh = outcomes.count(where: { $0.queueID != nil && !$0.alreadySpooled })
        if quota.counted && quota.granted > fresh {
            try? await limits.release(tenant: tenant, count: quota.granted - fresh, minute: quota.minute)
        }
        if let failure { throw failure }

        // 4. Only now the durable checkpoint: recipients, chunk done (unless stopped
        // early: then the chunk is given back, and whoever takes it on after a resume
        // expands only the recipients not recorded here), counters.
        let stoppedEarly = stopped || quotaLimited
        outcomes.sort { $0.subscriber < $1.subscriber }
        let ids = PGText.array(outcomes.map(\.subscriber))
        let queueIDs = PGText.textArray(outcomes.map(\.queueID))
        let states = PGText.textArray(outcomes.map { $0.skippedReason == nil ? "queued" : "skipped" })
        let reasons = PGText.textArray(outcomes.map(\.skippedReason))
        let parameters: [String?] = [tenant.parameter, campaignText, ids, queueIDs, states, reasons]
        let (queued, skipped): (Int, Int) = try await checkpointRetryingOutages(campaign: campaign.id,
                                                                                chunk: chunk.number) {
            try await self.db.transaction { connection in
            let rows = try connection.query("""
                INSERT INTO campaign_recipients (tenant_id, campaign_id, subscriber_id, queue_id, state, reason)
                SELECT $1, $2, u.subscriber_id, u.queue_id, u.state, u.reason
                FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[]) AS u(subscriber_id, queue_id, state, reason)
                ON CONFLICT (campaign_id, subscriber_id) DO UPDATE
                    SET queue_id = excluded.queue_id, state = excluded.state, reason = excluded.reason, updated_at = now()
                    WHERE campaign_recipients.state = 'pending'
                RETURNING state
                """, parameters).rows
            let queued = rows.count(where: { $0[0] == "queued" })
            var skipped = rows.count - queued
            if chunk.retry, !stoppedEarly {
                // Marked for retry but no longer a recipient (unsubscribed, bounced or
                // suppressed since): skipped, so that the campaign can finish.
                skipped += try connection.execute("""
                    UPDATE campaign_recipients SET state = 'skipped', updated_at = now(),
                        reason = 'no longer an active, unsuppressed subscriber of the campaign''s lists'
                    WHERE campaign_id = $1 AND subscriber_id BETWEEN $2 AND $3 AND state = 'pending'
                    """, [campaignText, String(chunk.first), String(chunk.last)])
            }
            if stoppedEarly {
                try connection.execute("""
                    UPDATE campaign_chunks SET claimed_by = NULL, claimed_at = NULL
                    WHERE campaign_id = $1 AND chunk_no = $2 AND NOT done
                    """, [campaignText, String(chunk.number)])
            } else {
                try connection.execute("""
                    UPDATE campaign_chunks SET done = true, done_at = now() WHERE campaign_id = $1 AND chunk_no = $2
                    """, [campaignText, String(chunk.number)])
            }
            try connection.execute("""
                UPDATE campaign_counters SET expanded = expanded + $2, skipped = skipped + $3, updated_at = now()
                WHERE campaign_id = $1
                """, [campaignText, String(queued), String(skipped)])
            return (queued, skipped)
            }
        }
        if !stoppedEarly { report.chunks += 1 }
        report.committed += outcomes.count(where: { $0.queueID != nil && !$0.alreadySpooled })
        report.alreadySpooled += outcomes.count(where: { $0.alreadySpooled })
        report.skipped += skipped
        logger.debug("chunk expanded", metadata: ["campaign": "\(campaign.id)", "chunk": "\(chunk.number)",
                                                  "recorded": "\(queued)", "skipped": "\(skipped)"])
        return nil
    }

    /// Runs a chunk's checkpoint, trying again while the database is unavailable. The
    /// chunk's messages are in the spool and being delivered: giving up here would
    /// leave the chunk to be expanded again once the database is back, and every
    /// message delivered meanwhile would be sent a second time. So the checkpoint waits
    /// for the database (0.5 s, doubling to 5 s between tries) as long as this process
    /// lives; only a kill in that time leaves the chunk to a re-expansion. A second try
    /// after a commit whose answer was lost changes nothing: the rows exist, so nothing
    /// is counted twice.
    func checkpointRetryingOutages<T: Sendable>(campaign: Int64, chunk: Int,
                                                _ body: () async throws -> T) async throws -> T {
        var delay = 0.5
        var tries = 0
        while true {
            do {
                let value = try await body()
                if tries > 0 {
                    logger.notice("chunk checkpoint written after a database outage",
                                  metadata: ["campaign": "\(campaign)", "chunk": "\(chunk)", "tries": "\(tries + 1)"])
                }
                return value
            } catch let error as PostgresError where error.isUnavailable {
                tries += 1
                if tries == 1 || tries % 10 == 0 {
                    logger.warning("chunk checkpoint waits for the database",
                                   metadata: ["campaign": "\(campaign)", "chunk": "\(chunk)", "error": "\(error)"])
                }
                try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
                delay = min(delay * 2, 5)
            }
        }
    }

    // MARK: - Envelope sender

    /// The envelope sender (MAIL FROM, hence the DSN recipient) of the campaign's message
    /// to one subscriber, VERP-like: `<local>+c<campaign>-s<subscriber>@<domain>` of the
    /// campaign's from address, e.g. `news+c12-s3456@example.org`, so that a bounce
    /// names the campaign and subscriber it is about even when the DSN is unparseable
    /// (``BounceAddress`` reads it back). The domain is `returnPathDomain` when given (a
    /// `[bounce]` domain, whose mail Herald consumes), else the from address's; either
    /// way it aligns with the From domain for SPF/DMARC. The from address itself is
    /// returned when the result would not be a plain dot-atom local part of at most 64
    /// octets (a quoted local part, say).
    public static func bounceAddress(_ from: String, campaign: Int64, subscriber: Int64,
                                     returnPathDomain: String? = nil) -> String {
        guard let at = from.lastIndex(of: "@"), at > from.startIndex else { return from }
        let local = from[..<at]
        guard !local.hasPrefix("\""), !local.contains("\\") else { return from }
        let tagged = "\(local)+c\(campaign)-s\(subscriber)"
        guard tagged.utf8.count <= 64 else { return from }
        return tagged + (returnPathDomain.map { "@" + $0 } ?? String(from[at...]))
    }

    // MARK: - Tracking

    /// The HTML transform of a campaign that tracks opens or clicks (nil otherwise): links
    /// to `http(s)` targets become signed redirects `<public_url>/t/c/<token>`, except
    /// Herald's own unsubscribe links; an open image `<public_url>/t/o/<token>` is added.
    /// Tokens are signed with the unsubscribe key (a different context string, so one
    /// kind of token can never pass for the other).
    static func tracking(_ campaign: Campaign, tenant: String, subscriber: Int64, publicURL: String,
                         key: [UInt8]) -> ((String) -> String)? {
        guard campaign.trackOpens || campaign.trackClicks else { return nil }
        let own = publicURL + "/u/"
        let click: ((String) -> String?)? = campaign.trackClicks ? { target in
            guard !target.hasPrefix(own) else { return nil }
            return publicURL + "/t/c/" + TrackingToken(kind: .click, tenant: tenant, campaign: campaign.id,
                                                       subscriber: subscriber, url: target).make(key: key)
        } : nil
        let image = campaign.trackOpens
            ? publicURL + "/t/o/" + TrackingToken(kind: .open, tenant: tenant, campaign: campaign.id,
                                                  subscriber: subscriber).make(key: key)
            : nil
        return { LinkTracking.apply(html: $0, click: click, openImage: image) }
    }

    // MARK: - Queue ids

    /// The spool id of the campaign's message to one subscriber, the same every time:
    /// the ``QueueID`` shape, with the 13 hex digits of time taken from the campaign's
    /// start (`started_at`, in microseconds) and the 7 Crockford base32 digits (35 bits)
    /// a keyed bijective mix of the subscriber id. Being a bijection (an add, odd
    /// multiplies and xor-shifts modulo 2^35), two subscribers of one campaign never
    /// share an id while subscriber ids stay below 2^35; a hash would collide about
    /// a dozen times in a million-subscriber campaign.
    public static func deterministicQueueID(campaign: Int64, subscriber: Int64, startedMicros: UInt64) -> QueueID {
        let mask: UInt64 = (1 << 35) - 1
        var key = UInt64(bitPattern: campaign) &* 0x9E37_79B9_7F4A_7C15
        key ^= key >> 29
        var x = (UInt64(bitPattern: subscriber) &+ key) & mask
        x = (x &* 0x5_DEEC_E66D) & mask          // odd: a bijection modulo 2^35
        x ^= x >> 17
        x = (x &* 0x4F6C_DD1D) & mask            // odd again
        x ^= x >> 13
        let hex = Array("0123456789ABCDEF".utf8)
        let base32 = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
        var bytes = [UInt8](repeating: 0, count: QueueID.length)
        var t = min(startedMicros, (1 << 52) - 1)
        for index in stride(from: QueueID.timeLength - 1, through: 0, by: -1) {
            bytes[index] = hex[Int(t & 0xF)]
            t >>= 4
        }
        for index in QueueID.timeLength..<QueueID.length {
            bytes[index] = base32[Int(x & 0x1F)]
            x >>= 5
        }
        return QueueID(String(decoding: bytes, as: UTF8.self))!
    }

    /// The subscriber id a ``deterministicQueueID(campaign:subscriber:startedMicros:)``
    /// was made for (the mix inverted), whatever its time part. Any queue id gives some
    /// number: callers confirm it against the recorded `campaign_recipients.queue_id`.
    public static func subscriber(fromQueueID id: String, campaign: Int64) -> Int64? {
        let bytes = Array(id.utf8)
        guard bytes.count == QueueID.length else { return nil }
        let base32 = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
        let mask: UInt64 = (1 << 35) - 1
        var x: UInt64 = 0
        for index in stride(from: QueueID.length - 1, through: QueueID.timeLength, by: -1) {
            guard let digit = base32.firstIndex(of: bytes[index]) else { return nil }
            x = (x << 5) | UInt64(digit)
        }
        func unshift(_ y: UInt64, _ k: UInt64) -> UInt64 {
            var v = y
            var shift = k
            while shift < 35 {
                v = y ^ (v >> k)
                shift += k
            }
            return v & mask
        }
        x = unshift(x, 13)
        x = (x &* inverse(0x4F6C_DD1D, mask: mask)) & mask
        x = unshift(x, 17)
        x = (x &* inverse(0x5_DEEC_E66D, mask: mask)) & mask
        var key = UInt64(bitPattern: campaign) &* 0x9E37_79B9_7F4A_7C15
        key ^= key >> 29
        return Int64((x &- key) & mask)
    }

    /// The inverse of an odd number modulo 2^35 (Newton's iteration).
    private static func inverse(_ a: UInt64, mask: UInt64) -> UInt64 {
        var x = a
        for _ in 0..<6 { x = x &* (2 &- a &* x) }
        return x & mask
    }
}
