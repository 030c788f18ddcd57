import Campaigns
import CampaignStore
import Foundation
import Hummingbird
import Logging
import Postgres
import Rendering
import Spool

/// More campaign routes (another tenant's campaign id is a 404 on each):
/// - `POST /v1/campaigns/{id}/schedule {"send_at": "2026-12-01T09:00:00", "time_zone": "Europe/Paris",
///   "deadline"?}` → 200 with the campaign, `send_at`/`deadline` in UTC. `send_at` and
///   `deadline` are wall-clock times in `time_zone` (an IANA zone, default `UTC`; an
///   unknown zone is a 422 naming it), or absolute with `Z`/`±hh:mm`. Only a draft (or a
///   scheduled campaign, to reschedule); ``CampaignScheduler`` starts it.
/// - `POST /v1/campaigns/{id}/duplicate` → 201 with a new draft named `<name> (copy)`.
/// - `POST /v1/campaigns/{id}/test {"emails": [...]}` (1 to 20) → 202 with the queue ids:
///   the campaign rendered for each address (as the tenant's subscriber with that
///   email when there is one, else a subscriber with only the email) and committed to
///   the spool now, tagged with the tenant and campaign. Works in any status.
/// - `GET /v1/campaigns/{id}/preview?email=` → `{"email", "subscriber_id", "subject", "html",
///   "text"}`: the campaign rendered for that address exactly as a test-send renders it
///   (nothing is sent or stored); `subscriber_id` is null when the tenant has no
///   subscriber with that address. Works in any status.
/// - `GET /v1/campaigns/{id}/failures?after=&limit=` → `{"data": [{"subscriber_id", "email",
///   "state", "reason", "queue_id"}], "next"}` (``CampaignStore/failures(tenant:id:after:limit:)``).
/// - `POST /v1/campaigns/{id}/retry-failed` → 202 with the campaign and `"retried"`: its
///   failed recipients that are still recipients are expanded again
///   (``CampaignStore/retryFailed(tenant:id:)``); 409 unless it is `sent` or `sending`.
public struct CampaignsActionsV1: Sendable {
    public static let maxTestAddresses = 20

    let stores: HTTPStores
    let writer: SpoolWriter
    let hostname: String

    public init(stores: HTTPStores, writer: SpoolWriter, hostname: String) {
        self.stores = stores
        self.writer = writer
        self.hostname = hostname
    }

    struct ScheduleBody: Decodable {
        var send_at: String?
        var time_zone: String?
        var deadline: String?
    }

    struct ScheduledJSON: Encodable, ResponseEncodable {
        var campaign: CampaignsV1.CampaignJSON
        var send_at: Date?
        var time_zone: String
        var deadline: Date?

        enum CodingKeys: String, CodingKey { case send_at, time_zone, deadline }

        func encode(to encoder: any Encoder) throws {
            try campaign.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(send_at, forKey: .send_at)
            try c.encode(time_zone, forKey: .time_zone)
            try c.encode(deadline, forKey: .deadline)
        }
    }

    struct RetryAccepted: Encodable, ResponseEncodable {
        var campaign: CampaignsV1.CampaignJSON
        var retried: Int

        enum CodingKeys: String, CodingKey { case retried }

        func encode(to encoder: any Encoder) throws {
            try campaign.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(retried, forKey: .retried)
        }
    }

    struct TestBody: Decodable {
        var emails: [String]?
    }

    struct TestAccepted: Encodable, ResponseEncodable {
        struct Item: Encodable {
            var email: String
            var id: String
            var message_id: String
            var subscriber_id: Int64?

            enum CodingKeys: String, CodingKey { case email, id, message_id, subscriber_id }

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(email, forKey: .email)
                try c.encode(id, forKey: .id)
                try c.encode(message_id, forKey: .message_id)
                try c.encode(subscriber_id, forKey: .subscriber_id)
            }
        }

        var accepted: Int
        var messages: [Item]
    }

    /// `GET /v1/campaigns/{id}/preview?email=`: the campaign as that address would get it.
    struct PreviewJSON: Encodable, ResponseEncodable {
        var email: String
        var subscriber_id: Int64?
        var subject: String
        var html: String?
        var text: String

        enum CodingKeys: String, CodingKey { case email, subscriber_id, subject, html, text }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(email, forKey: .email)
            try c.encode(subscriber_id, forKey: .subscriber_id)
            try c.encode(subject, forKey: .subject)
            try c.encode(html, forKey: .html)
            try c.encode(text, forKey: .text)
        }
    }

    struct FailureJSON: Encodable {
        var subscriber_id: Int64
        var email: String?
        var state: String
        var reason: String?
        var queue_id: String?
        var updated_at: Date?

        enum CodingKeys: String, CodingKey { case subscriber_id, email, state, reason, queue_id, updated_at }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(subscriber_id, forKey: .subscriber_id)
            try c.encode(email, forKey: .email)
            try c.encode(state, forKey: .state)
            try c.encode(reason, forKey: .reason)
            try c.encode(queue_id, forKey: .queue_id)
            try c.encode(updated_at, forKey: .updated_at)
        }
    }

    /// A wall-clock or absolute time field, or a 422 naming the field.
    static func time(_ text: String, field: String, zone: TimeZone) throws -> Date {
        guard let date = CampaignStore.parseLocalTime(text, in: zone) else {
            throw Problem.unprocessable(
                "\(field): \"\(text)\" is not a time like 2026-12-01T09:00:00 (local to time_zone) "
                    + "or 2026-12-01T08:00:00Z")
        }
        return date
    }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let campaigns = stores.campaigns
        let limits = stores.limits
        let expander = stores.expander
        let writer = self.writer
        let hostname = self.hostname

        group.post("campaigns/:id/schedule") { request, context -> ScheduledJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            let body = try await APIInput.decode(ScheduleBody.self, from: request)
            // 404 before validating the body, so another tenant learns nothing.
            guard try await campaigns.campaign(tenant: tenant, id: id) != nil else {
                throw Problem.notFound("campaign \(id)")
            }
            let zoneName = body.time_zone ?? "UTC"
            guard let zone = TimeZone(identifier: zoneName) else {
                throw Problem.unprocessable(
                    "time_zone: \"\(zoneName)\" is not a known IANA time zone (e.g. Europe/Paris, America/New_York, UTC)")
            }
            guard let sendText = body.send_at else { throw Problem.unprocessable("send_at: this field is required") }
            let sendAt = try Self.time(sendText, field: "send_at", zone: zone)
            let deadline = try body.deadline.map { try Self.time($0, field: "deadline", zone: zone) }
            guard let (campaign, schedule) = try await CampaignsV1.call({
                try await campaigns.schedule(tenant: tenant, id: id, sendAt: sendAt, timeZone: zone.identifier,
                                             deadline: deadline)
            }) else { throw Problem.notFound("campaign \(id)") }
            return ScheduledJSON(campaign: .init(campaign), send_at: schedule.sendAt, time_zone: schedule.timeZone,
                                 deadline: schedule.deadline)
        }

        group.post("campaigns/:id/duplicate") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            guard let copy = try await CampaignsV1.call({ try await campaigns.duplicate(tenant: tenant, id: id) })
            else { throw Problem.notFound("campaign \(id)") }
            return try APIInput.created(CampaignsV1.CampaignJSON(copy), location: "/v1/campaigns/\(copy.id)",
                                        request: request, context: context)
        }

        group.post("campaigns/:id/test") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            let body = try await APIInput.decode(TestBody.self, from: request)
            guard let campaign = try await campaigns.campaign(tenant: tenant, id: id) else {
                throw Problem.notFound("campaign \(id)")
            }
            let emails = body.emails ?? []
            guard !emails.isEmpty else { throw Problem.unprocessable("emails: give 1 to \(Self.maxTestAddresses) addresses") }
            guard emails.count <= Self.maxTestAddresses else {
                throw Problem.unprocessable("emails: at most \(Self.maxTestAddresses) addresses, got \(emails.count)")
            }
            var normalized: [String] = []
            var errors: [String] = []
            for (i, email) in emails.enumerated() {
                switch SubscriberAddress.normalize(email) {
                case .success(let address): if !normalized.contains(address) { normalized.append(address) }
                case .failure(let error): errors.append("emails[\(i)] (\(email)): \(error.message)")
                }
            }
            guard errors.isEmpty else { throw Problem.unprocessable("Some addresses are not valid", errors: errors) }
            // Test messages count against the tenant's quota like any other.
            let admitted = try await limits.admit(context, count: normalized.count)
            let items: [TestAccepted.Item]
            do {
                items = try await Self.sendTest(campaign: campaign, emails: normalized, campaigns: campaigns,
                                                expander: expander, writer: writer, hostname: hostname,
                                                logger: context.logger)
            } catch {
                await limits.giveBack(admitted, context, queued: 0)
                throw error
            }
            context.logger.info("campaign test sent", metadata: ["campaign": "\(id)", "count": "\(items.count)"])
            return try APIInput.accepted(TestAccepted(accepted: items.count, messages: items), request: request,
                                         context: context)
        }

        group.get("campaigns/:id/preview") { request, context -> PreviewJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            guard let campaign = try await campaigns.campaign(tenant: tenant, id: id) else {
                throw Problem.notFound("campaign \(id)")
            }
            let text = request.uri.queryParameters.get("email") ?? ""
            let email: String
            switch SubscriberAddress.normalize(text) {
            case .success(let address): email = address
            case .failure(let error): throw Problem.unprocessable("email: \(error.message) (got \"\(text)\")")
            }
            let (_, rendered) = try await Self.render(campaign: campaign, emails: [email], campaigns: campaigns,
                                                      expander: expander, hostname: hostname, date: Date())
            guard let one = rendered.first else { throw Problem.notFound("campaign \(id)") }
            return PreviewJSON(email: one.email, subscriber_id: one.subscriber, subject: one.message.parts.subject,
                               html: one.message.parts.html, text: one.message.parts.text)
        }

        group.get("campaigns/:id/failures") { request, context -> Page<FailureJSON> in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            return try await APIInput.page(request, max: 1000, notFound: "campaign \(id)", cursor: \.subscriberID) {
                FailureJSON(subscriber_id: $0.subscriberID, email: $0.email, state: $0.state, reason: $0.reason,
                            queue_id: $0.queueID, updated_at: $0.updatedAt)
            } fetch: {
                try await campaigns.failures(tenant: tenant, id: id, after: $0, limit: $1)
            }
        }

        group.post("campaigns/:id/retry-failed") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            guard let (campaign, count) = try await CampaignsV1.call({
                try await campaigns.retryFailed(tenant: tenant, id: id)
            }) else { throw Problem.notFound("campaign \(id)") }
            if count > 0 { await expander?.start(campaign: id) }
            context.logger.info("campaign retry-failed", metadata: ["campaign": "\(id)", "recipients": "\(count)"])
            return try APIInput.accepted(RetryAccepted(campaign: .init(campaign), retried: count), request: request,
                                         context: context)
        }
    }

    /// Renders the campaign for each address and commits the messages to the spool.
    static func sendTest(campaign: Campaign, emails: [String], campaigns: CampaignStore, expander: CampaignExpander?,
                         writer: SpoolWriter, hostname: String, logger: Logger) async throws -> [TestAccepted.Item] {
        let now = Date()
        let (renderer, rendered) = try await render(campaign: campaign, emails: emails, campaigns: campaigns,
                                                    expander: expander, hostname: hostname, date: now)
        let tenantText = campaign.tenant.description
        let campaignText = String(campaign.id)
        let sender = renderer.from.address
        var items: [TestAccepted.Item] = []
        for (email, subscriber, message) in rendered {
            let envelope = Envelope(
                id: QueueID.generate(), arrival: now, sender: sender,
                origin: EnvelopeOrigin(listener: "campaign-test", clientAddress: "api", authenticatedUser: tenantText,
                                       helo: nil, tls: false),
                recipients: [EnvelopeRecipient(address: email)], body: "8BITMIME",
                smtputf8: message.needsSMTPUTF8, tenant: tenantText, campaign: campaignText)
            let stored: Envelope
            do {
                stored = try await writer.commit(message.bytes, envelope)
            } catch {
                logger.error("spool commit failed: \(error)")
                throw Problem.spoolRefused(error, "\(items.count) of \(rendered.count) test message(s) were queued; "
                                               + "retry later.")
            }
            items.append(.init(email: email, id: stored.id.rawValue, message_id: message.messageID,
                               subscriber_id: subscriber))
        }
        return items
    }

    /// The campaign rendered for each of `emails` (normalized), as the tenant's
    /// subscriber with that address when there is one (their fields and an unsubscribe
    /// link for a list of the campaign's they are on), else as a subscriber with only
    /// the email: what a test-send commits and what a preview shows.
    static func render(campaign: Campaign, emails: [String], campaigns: CampaignStore, expander: CampaignExpander?,
                       hostname: String, date: Date) async throws
        -> (MessageRenderer, [(email: String, subscriber: Int64?, message: RenderedMessage)])
    {
        let renderer: MessageRenderer
        do {
            if let expander {
                renderer = try await expander.makeRenderer(campaign)
            } else {
                let template = try CampaignTemplate(subject: campaign.subject, html: campaign.html, text: campaign.text)
                renderer = try MessageRenderer(template: template, campaign: campaign.templateFields,
                                               from: try MailAddress(parsing: campaign.from),
                                               replyTo: try campaign.replyTo.map { try MailAddress(parsing: $0) },
                                               messageIDDomain: hostname)
            }
        } catch {
            throw Problem.unprocessable("The campaign cannot be rendered: \(error)")
        }
        // The tenant's subscribers with these addresses, with a list of the campaign's they are on.
        var known: [String: (id: Int64, list: Int64?, variables: RecipientVariables)] = [:]
        for row in try await campaigns.db.query("""
            SELECT s.id, s.email, s.name, s.first_name, s.last_name, s.attributes,
                   (SELECT min(m.list_id) FROM list_members m WHERE m.tenant_id = s.tenant_id
                    AND m.subscriber_id = s.id AND m.list_id = ANY ($3::bigint[]))
            FROM subscribers s WHERE s.tenant_id = $1 AND s.email = ANY ($2::text[])
            """, [campaign.tenant.parameter, PGText.textArray(emails), PGText.array(campaign.listIDs)]) {
            let email = try PGText.require(row, 1)
            // Column 6 is NULL when the subscriber is on none of the campaign's lists.
            known[email] = (try PGText.require(row, 0, PGText.int64),
                            try PGText.optional(row, 6, PGText.int64) ?? campaign.listIDs.first,
                            RecipientVariables(email: email, firstName: row[3], lastName: row[4], name: row[2],
                                               attributes: try SubscriberStore.attributes(row, 5)))
        }
        let publicURL = expander?.publicURL
        let secret = expander?.secret
        let tenantText = campaign.tenant.description
        let campaignText = String(campaign.id)
        var rendered: [(email: String, subscriber: Int64?, message: RenderedMessage)] = []
        for email in emails {
            var variables = known[email]?.variables ?? RecipientVariables(email: email)
            var unsubscribe: ListUnsubscribe?
            if let subscriber = known[email], let list = subscriber.list, let publicURL, let secret {
                let token = UnsubscribeToken.make(subscriber: String(subscriber.id), list: String(list),
                                                  campaign: campaignText, tenant: tenantText, key: secret)
                let url = publicURL + "/u/" + token
                variables.unsubscribeURL = url
                unsubscribe = ListUnsubscribe(url: url)
            }
            do {
                rendered.append((email, known[email]?.id,
                                 try renderer.render(recipient: variables, listUnsubscribe: unsubscribe, date: date)))
            } catch {
                throw Problem.unprocessable("The campaign cannot be rendered for \(email): \(error)")
            }
        }
        return (renderer, rendered)
    }
}
