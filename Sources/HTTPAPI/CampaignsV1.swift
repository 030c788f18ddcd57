import Campaigns
import CampaignStore
import Foundation
import Hummingbird
import Rendering

/// Campaigns:
/// - `POST /v1/campaigns {"name", "from", "reply_to"?, "subject", "html"?, "text"?, "list_ids"}` → 201;
/// - `GET /v1/campaigns?after=&limit=` → `{"data": [...], "next"}`; `GET /v1/campaigns/{id}` (with its
///   schedule: `send_at`, `deadline`, null until scheduled);
/// - `PATCH /v1/campaigns/{id}` (same fields, each optional; only while `draft`, else 409);
/// - `POST /v1/campaigns/{id}/send` → 202: plans the recipients and starts expansion;
/// - `POST /v1/campaigns/{id}/pause`, `/resume`, `/cancel` → 202 with the campaign: the
///   status changes at once; expansion stops within a quarter of a second (messages
///   being committed finish and are recorded) or resumes where it stopped, and each
///   node's ``CampaignControl`` holds, releases or deletes the campaign's messages in its
///   spool (this node's right away, cancel's deletions in the background, other nodes
///   within their control interval). A campaign stays `sending` until its last
///   recipient's final outcome, so all three work as long as mail waits.
/// - `GET /v1/campaigns/{id}/timeline?minutes=` → outcomes per minute (``TimelineJSON``);
/// - `GET /v1/campaigns/{id}/stats` → counters (``StatsJSON``), `remaining`, the rate
///   and `estimated_completion` (absent when unknown), and `completion` once finished.
///
/// Template problems are a 422 whose `errors` name field, line and variable
/// (`html line 3: unknown variable "frist_name"`). Another tenant's campaign id is a 404.
public struct CampaignsV1: Sendable {
    public static let maxPageSize = 500

    struct CampaignJSON: Encodable, ResponseEncodable {
        var id: Int64
        var name: String
        var from: String
        var reply_to: String?
        var subject: String
        var html: String?
        var text: String?
        var list_ids: [Int64]
        var segment: TemplateValue?
        var send_rate: String?
        var send_window: CampaignSendWindow?
        var max_attempts: Int?
        var track_opens: Bool
        var track_clicks: Bool
        var time_zone: String
        var status: String
        var started_at: Date?
        var finished_at: Date?
        var created_at: Date
        var updated_at: Date

        init(_ c: Campaign) {
            id = c.id
            name = c.name
            from = c.from
            reply_to = c.replyTo
            subject = c.subject
            html = c.html
            text = c.text
            list_ids = c.listIDs
            segment = c.segment?.json
            send_rate = c.sendRate
            send_window = c.sendWindow
            max_attempts = c.maxAttempts
            track_opens = c.trackOpens
            track_clicks = c.trackClicks
            time_zone = c.timeZone
            status = c.status.rawValue
            started_at = c.startedAt
            finished_at = c.finishedAt
            created_at = c.createdAt
            updated_at = c.updatedAt
        }

        enum CodingKeys: String, CodingKey {
            case id, name, from, reply_to, subject, html, text, list_ids, segment, send_rate, send_window, max_attempts,
                 track_opens, track_clicks, time_zone, status, started_at, finished_at, created_at, updated_at
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(name, forKey: .name)
            try c.encode(from, forKey: .from)
            try c.encode(reply_to, forKey: .reply_to)
            try c.encode(subject, forKey: .subject)
            try c.encode(html, forKey: .html)
            try c.encode(text, forKey: .text)
            try c.encode(list_ids, forKey: .list_ids)
            try c.encode(segment, forKey: .segment)
            try c.encode(send_rate, forKey: .send_rate)
            try c.encode(send_window, forKey: .send_window)
            try c.encode(max_attempts, forKey: .max_attempts)
            try c.encode(track_opens, forKey: .track_opens)
            try c.encode(track_clicks, forKey: .track_clicks)
            try c.encode(time_zone, forKey: .time_zone)
            try c.encode(status, forKey: .status)
            try c.encode(started_at, forKey: .started_at)
            try c.encode(finished_at, forKey: .finished_at)
            try c.encode(created_at, forKey: .created_at)
            try c.encode(updated_at, forKey: .updated_at)
        }
    }

    struct StatsJSON: Encodable, ResponseEncodable {
        var status: String
        var total: Int64
        var expanded: Int64
        var sent: Int64
        var deferred: Int64
        var bounced: Int64
        var failed: Int64
        var unsubscribed: Int64
        var skipped: Int64
        /// Recipients whose mail a cancel stopped (with those never expanded, once cancelled).
        var cancelled: Int64
        /// Recipients whose message the postmaster holds (`herald queue hold`).
        var held: Int64
        /// Complaints (feedback reports) received about the campaign's messages.
        var complained: Int64
        /// Opens and clicks: all, and distinct subscribers (0 unless the campaign tracks them).
        var opens: Int64
        var unique_opens: Int64
        var clicks: Int64
        var unique_clicks: Int64
        var chunks: Int64
        var chunks_done: Int64
        /// Recipients without a final outcome yet (total - skipped - sent - bounced -
        /// failed - cancelled); 0 once cancelled.
        var remaining: Int64
        /// Final outcomes per minute over the last minute, as this node recorded them.
        var rate_per_minute: Int?
        /// Absent when unknown (paused, no rate yet), never a guess.
        var estimated_completion: Date?
        var started_at: Date?
        var finished_at: Date?
        /// Once finished: `complete`, `partial` or `failed` (``CampaignStats/completion``).
        var completion: String?

        init(_ s: CampaignStats, progress: CampaignStatsRecorder.Progress?) {
            status = s.status.rawValue
            total = s.total
            expanded = s.expanded
            sent = s.sent
            deferred = s.deferred
            bounced = s.bounced
            failed = s.failed
            unsubscribed = s.unsubscribed
            skipped = s.skipped
            cancelled = s.cancelledTotal
            held = s.held
            complained = s.complained
            opens = s.opens
            unique_opens = s.uniqueOpens
            clicks = s.clicks
            unique_clicks = s.uniqueClicks
            chunks = s.chunks
            chunks_done = s.chunksDone
            remaining = s.remaining
            rate_per_minute = progress?.ratePerMinute
            estimated_completion = progress?.estimatedCompletion
            started_at = s.startedAt
            finished_at = s.finishedAt
            completion = s.completion
        }

        enum CodingKeys: String, CodingKey {
            case status, total, expanded, sent, deferred, bounced, failed, unsubscribed, skipped, cancelled, held,
                 complained, opens, unique_opens, clicks, unique_clicks, chunks,
                 chunks_done, remaining, rate_per_minute, estimated_completion, started_at, finished_at, completion
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(status, forKey: .status)
            for (key, value) in [(CodingKeys.total, total), (.expanded, expanded), (.sent, sent), (.deferred, deferred),
                                 (.bounced, bounced), (.failed, failed), (.unsubscribed, unsubscribed),
                                 (.skipped, skipped), (.cancelled, cancelled), (.held, held), (.complained, complained),
                                 (.opens, opens), (.unique_opens, unique_opens), (.clicks, clicks),
                                 (.unique_clicks, unique_clicks), (.chunks, chunks),
                                 (.chunks_done, chunks_done), (.remaining, remaining)] {
                try c.encode(value, forKey: key)
            }
            try c.encode(rate_per_minute, forKey: .rate_per_minute)
            try c.encodeIfPresent(estimated_completion, forKey: .estimated_completion)
            try c.encode(started_at, forKey: .started_at)
            try c.encode(finished_at, forKey: .finished_at)
            try c.encodeIfPresent(completion, forKey: .completion)
        }
    }

    /// `GET /v1/campaigns/{id}/timeline?minutes=` (1 to 180, default 60): the outcomes this
    /// node recorded per minute, every attempt counted (sent, deferred, bounced, failed),
    /// oldest minute first, zeros included. In memory, since the process started; with
    /// several nodes each answers for its own deliveries. Empty without a stats recorder.
    struct TimelineJSON: Encodable, ResponseEncodable {
        struct Minute: Encodable {
            var minute: Date
            var sent: Int
            var deferred: Int
            var bounced: Int
            var failed: Int
        }
        var minutes: Int
        var data: [Minute]
    }

    /// A create or update body. `segment`, `send_rate`, `send_window` and `max_attempts`
    /// tell "left out" (keep) from `null` (clear) on update.
    struct Body: Decodable {
        var name: String?
        var from: String?
        var reply_to: String?
        var subject: String?
        var html: String?
        var text: String?
        var list_ids: [Int64]?
        var segment: TemplateValue??
        var send_rate: String??
        var send_window: CampaignSendWindow??
        var max_attempts: Int??
        var track_opens: Bool?
        var track_clicks: Bool?

        enum CodingKeys: String, CodingKey {
            case name, from, reply_to, subject, html, text, list_ids, segment, send_rate, send_window, max_attempts,
                 track_opens, track_clicks
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decodeIfPresent(String.self, forKey: .name)
            from = try c.decodeIfPresent(String.self, forKey: .from)
            reply_to = try c.decodeIfPresent(String.self, forKey: .reply_to)
            subject = try c.decodeIfPresent(String.self, forKey: .subject)
            html = try c.decodeIfPresent(String.self, forKey: .html)
            text = try c.decodeIfPresent(String.self, forKey: .text)
            list_ids = try c.decodeIfPresent([Int64].self, forKey: .list_ids)
            segment = try c.decodePatch(TemplateValue.self, forKey: .segment)
            send_rate = try c.decodePatch(String.self, forKey: .send_rate)
            send_window = try c.decodePatch(CampaignSendWindow.self, forKey: .send_window)
            max_attempts = try c.decodePatch(Int.self, forKey: .max_attempts)
            track_opens = try c.decodeIfPresent(Bool.self, forKey: .track_opens)
            track_clicks = try c.decodeIfPresent(Bool.self, forKey: .track_clicks)
        }

        func input() throws -> CampaignInput {
            var segmentInput: Segment?? = nil
            if let segment {
                segmentInput = .some(try segment.map { try Segment($0) })
            }
            return CampaignInput(name: name, from: from, replyTo: reply_to, subject: subject, html: html, text: text,
                                 listIDs: list_ids, segment: segmentInput, sendRate: send_rate,
                                 sendWindow: send_window, maxAttempts: max_attempts, trackOpens: track_opens,
                                 trackClicks: track_clicks)
        }
    }

    let stores: HTTPStores

    public init(stores: HTTPStores) { self.stores = stores }

    /// Runs a store call, turning template and store errors into problems.
    static func call<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await APIInput.store(body)
        } catch let error as TemplateValidationError {
            throw Problem.unprocessable("The templates do not validate: \(error.description)",
                                        errors: error.issues.map(\.message))
        }
    }

    /// After a pause, resume or cancel: this node's control pass. The status change is
    /// what counts (every node's next pass applies it), so a failed pass is logged, not
    /// an error for the client. `wait`: the answer leaves once the pass is done (pause,
    /// resume: a set of campaign tags); otherwise the pass runs in the background
    /// (cancel: deletes the campaign's messages, possibly many).
    static func applyNow(_ control: CampaignControl?, wait: Bool, _ context: HeraldRequestContext) async {
        guard let control else { return }
        let logger = context.logger
        let pass = Task {
            do { try await control.reconcile() } catch { logger.error("campaign control pass failed: \(error)") }
        }
        if wait { await pass.value }
    }

    /// A status change's answer: 202 (its effect on the spool may still be running).
    static func accepted(_ campaign: Campaign, _ request: Request, _ context: HeraldRequestContext) throws -> Response {
        try APIInput.accepted(CampaignJSON(campaign), request: request, context: context)
    }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let campaigns = stores.campaigns
        let expander = stores.expander
        let statsRecorder = stores.statsRecorder
        let control = stores.control
        group.post("campaigns") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let body = try await APIInput.decode(Body.self, from: request)
            let campaign = try await Self.call { try await campaigns.create(tenant: tenant, try body.input()) }
            return try APIInput.created(CampaignJSON(campaign), location: "/v1/campaigns/\(campaign.id)",
                                        request: request, context: context)
        }
        group.get("campaigns") { request, context -> Page<CampaignJSON> in
            let tenant = try context.databaseTenant()
            return try await APIInput.page(request, max: Self.maxPageSize, cursor: \.id, item: CampaignJSON.init) {
                try await campaigns.campaigns(tenant: tenant, after: $0, limit: $1)
            }
        }
        // One campaign with its schedule (`send_at`, `deadline`: null until it is scheduled).
        group.get("campaigns/:id") { _, context -> CampaignsActionsV1.ScheduledJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            guard let campaign = try await campaigns.campaign(tenant: tenant, id: id),
                  let schedule = try await campaigns.schedule(tenant: tenant, id: id) else {
                throw Problem.notFound("campaign \(id)")
            }
            return .init(campaign: CampaignJSON(campaign), send_at: schedule.sendAt, time_zone: campaign.timeZone,
                         deadline: schedule.deadline)
        }
        group.patch("campaigns/:id") { request, context -> CampaignJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            let body = try await APIInput.decode(Body.self, from: request)
            guard let campaign = try await Self.call({
                try await campaigns.update(tenant: tenant, id: id, try body.input())
            })
            else { throw Problem.notFound("campaign \(id)") }
            return CampaignJSON(campaign)
        }
        let limits = stores.limits
        group.post("campaigns/:id/send") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            // A tenant with no room left in its quota is told so (429); with some, the
            // campaign starts and its expansion waits whenever the quota is used up.
            let room = try await limits.reserve(tenant: tenant, count: 1, partial: true, dryRun: true)
            guard room.granted > 0 else { throw Problem.quota(room) }
            guard let campaign = try await Self.call({ try await campaigns.send(tenant: tenant, id: id) })
            else { throw Problem.notFound("campaign \(id)") }
            await expander?.start(campaign: id)
            return try Self.accepted(campaign, request, context)
        }
        group.post("campaigns/:id/pause") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            guard let campaign = try await Self.call({ try await campaigns.pause(tenant: tenant, id: id) })
            else { throw Problem.notFound("campaign \(id)") }
            await Self.applyNow(control, wait: true, context)
            return try Self.accepted(campaign, request, context)
        }
        group.post("campaigns/:id/resume") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            guard let campaign = try await Self.call({ try await campaigns.resume(tenant: tenant, id: id) })
            else { throw Problem.notFound("campaign \(id)") }
            await Self.applyNow(control, wait: true, context)
            if campaign.status == .sending { await expander?.start(campaign: id) }
            return try Self.accepted(campaign, request, context)
        }
        group.post("campaigns/:id/cancel") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            guard let campaign = try await Self.call({ try await campaigns.cancel(tenant: tenant, id: id) })
            else { throw Problem.notFound("campaign \(id)") }
            await Self.applyNow(control, wait: false, context)
            return try Self.accepted(campaign, request, context)
        }
        group.get("campaigns/:id/timeline") { request, context -> TimelineJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            var minutes = 60
            if let text = request.uri.queryParameters.get("minutes") {
                guard let m = Int(text), (1...CampaignStatsRecorder.seriesMinutes).contains(m) else {
                    throw Problem.badRequest("minutes: give an integer from 1 to \(CampaignStatsRecorder.seriesMinutes) (got \"\(text)\")")
                }
                minutes = m
            }
            guard try await campaigns.campaign(tenant: tenant, id: id) != nil else { throw Problem.notFound("campaign \(id)") }
            let series = await statsRecorder?.outcomesPerMinute(campaign: id, minutes: minutes) ?? []
            return TimelineJSON(minutes: minutes, data: series.map {
                .init(minute: $0.minute, sent: $0.counts.sent, deferred: $0.counts.deferred, bounced: $0.counts.bounced,
                      failed: $0.counts.failed)
            })
        }

        group.get("campaigns/:id/stats") { _, context -> StatsJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            guard let s = try await campaigns.stats(tenant: tenant, id: id) else { throw Problem.notFound("campaign \(id)") }
            return StatsJSON(s, progress: await statsRecorder?.progress(s, campaign: id))
        }
    }
}
