import CampaignStore
import Campaigns
import Foundation
import Hummingbird
import Rendering
import Spool

/// `POST /v1/messages`: one template plus up to 10,000 recipients with their own
/// variables, rendered and committed straight into the spool (no database needed).
///
/// The whole request is validated (templates, addresses, headers) before anything is
/// written, so a bad request leaves nothing behind. Commits run concurrently so that
/// they share disk flushes. The reply lists each recipient's queue id: `202 Accepted`,
/// because delivery happens later (watch `delivery.jsonl` or campaign stats). For a
/// database tenant, recipients on its suppression list get no message: the reply lists
/// them under `suppressed` with the reason; the others count against its quota (429
/// with `Retry-After` over it, nothing queued).
public struct MessagesV1: Sendable {
    public static let maxRecipients = 10_000

    struct Body: Decodable {
        struct Recipient: Decodable {
            var email: String
            var first_name: String?
            var last_name: String?
            var name: String?
            var attributes: [String: TemplateValue]?
            var unsubscribe_url: String?
        }
        var from: String
        var reply_to: String?
        var subject: String
        var html: String?
        var text: String?
        var headers: [String: String]?
        var recipients: [Recipient]
    }

    struct Accepted: Encodable, ResponseEncodable {
        struct Item: Encodable {
            var email: String
            var id: String
            var message_id: String
        }
        struct Suppressed: Encodable {
            var email: String
            var reason: String
        }
        var accepted: Int
        var messages: [Item]
        var suppressed: [Suppressed]
    }

    let writer: SpoolWriter
    let hostname: String

    /// The database tenants' suppression lists; nil without a database.
    let suppressions: SuppressionStore?
    /// The database tenants' quotas (429 over them); nil without a database.
    let limits: TenantLimitsStore?
    /// Each rendered message's limit (`smtp.max_message_size`, as over SMTP): 413 beyond.
    let maxMessageSize: Int
    /// The request body's limit (`http.max_body_size`): 413 beyond.
    let maxBodySize: Int

    public init(writer: SpoolWriter, hostname: String, suppressions: SuppressionStore? = nil,
                limits: TenantLimitsStore? = nil,
                maxMessageSize: Int = 25 * 1024 * 1024, maxBodySize: Int = 32 * 1024 * 1024) {
        self.writer = writer
        self.hostname = hostname
        self.suppressions = suppressions
        self.limits = limits
        self.maxMessageSize = maxMessageSize
        self.maxBodySize = maxBodySize
    }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        group.post("messages") { request, context in
            try await self.handle(request, context)
        }
    }

    func handle(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        let body = try await APIInput.decode(Body.self, from: request, limit: maxBodySize,
                                             tooLarge: "http.max_body_size; split the recipients over several requests")
        // A template already over the limit makes every message over it: refuse before rendering.
        let templateSize = body.subject.utf8.count + (body.html?.utf8.count ?? 0) + (body.text?.utf8.count ?? 0)
        guard templateSize <= maxMessageSize else {
            throw Problem(.contentTooLarge, "The templates are \(templateSize) bytes; a message may be at most "
                + "\(maxMessageSize) bytes (smtp.max_message_size).")
        }
        guard !body.recipients.isEmpty else { throw Problem.unprocessable("recipients: give at least one recipient") }
        guard body.recipients.count <= Self.maxRecipients else {
            throw Problem.unprocessable("recipients: at most \(Self.maxRecipients) per request, got \(body.recipients.count)")
        }
        let template: CampaignTemplate
        do {
            template = try CampaignTemplate(subject: body.subject, html: body.html, text: body.text)
        } catch {
            throw Problem.unprocessable("The templates do not validate: \(error.description)",
                                        errors: error.issues.map(\.message))
        }
        let from: MailAddress
        let replyTo: MailAddress?
        do {
            from = try MailAddress(parsing: body.from)
        } catch {
            throw Problem.unprocessable("from: \(error)")
        }
        do {
            replyTo = try body.reply_to.map { try MailAddress(parsing: $0) }
        } catch {
            throw Problem.unprocessable("reply_to: \(error)")
        }
        let renderer: MessageRenderer
        do {
            renderer = try MessageRenderer(
                template: template, from: from, replyTo: replyTo, messageIDDomain: hostname,
                extraHeaders: (body.headers ?? [:]).sorted { $0.key < $1.key }.map { ExtraHeader($0.key, $0.value) })
        } catch {
            throw Problem.unprocessable("headers: \(error)")
        }
        // Suppressed addresses of a database tenant get nothing.
        var suppressed: [Accepted.Suppressed] = []
        var suppressedReasons: [String: SuppressionReason] = [:]
        if let suppressions, let tenant = try? context.databaseTenant() {
            suppressedReasons = try await suppressions.suppressed(tenant: tenant, among: body.recipients.map(\.email))
        }
        // Render everything first: a bad recipient rejects the request before any commit.
        var rendered: [(String, RenderedMessage)] = []
        rendered.reserveCapacity(body.recipients.count)
        var errors: [String] = []
        let now = Date()
        for (i, r) in body.recipients.enumerated() {
            if !suppressedReasons.isEmpty, let email = try? SubscriberAddress.normalize(r.email).get(),
               let reason = suppressedReasons[email] {
                suppressed.append(.init(email: r.email, reason: reason.rawValue))
                continue
            }
            let vars = RecipientVariables(email: r.email, firstName: r.first_name, lastName: r.last_name, name: r.name,
                                          attributes: r.attributes ?? [:], unsubscribeURL: r.unsubscribe_url)
            do {
                let unsubscribe = r.unsubscribe_url.map { ListUnsubscribe(url: $0) }
                let message = try renderer.render(recipient: vars, listUnsubscribe: unsubscribe, date: now)
                guard message.bytes.count <= maxMessageSize else {
                    throw Problem(.contentTooLarge, "recipients[\(i)] (\(r.email)): the message is "
                        + "\(message.bytes.count) bytes; a message may be at most \(maxMessageSize) bytes "
                        + "(smtp.max_message_size); nothing was queued")
                }
                rendered.append((r.email, message))
            } catch let problem as Problem {
                throw problem
            } catch {
                errors.append("recipients[\(i)] (\(r.email)): \(error)")
                if errors.count >= 100 { break }
            }
        }
        guard errors.isEmpty else {
            throw Problem.unprocessable("\(errors.count) recipient(s) cannot be rendered; nothing was queued", errors: errors)
        }
        // Counted against the tenant's quota (one per message) before anything is
        // queued: over it, 429 and nothing is.
        let admitted = try await limits?.admit(context, count: rendered.count)
        let tenant = context.tenant
        let sender = from.address
        let writer = self.writer
        // Commit concurrently (bounded), keeping the request's order in the reply.
        var items = [Accepted.Item?](repeating: nil, count: rendered.count)
        let failure = await SpoolWriter.concurrently(count: rendered.count, limit: 128) { i in
            let (email, message) = rendered[i]
            let envelope = Envelope(
                id: QueueID.generate(), arrival: Date(), sender: sender,
                origin: EnvelopeOrigin(listener: "http", clientAddress: "api", authenticatedUser: tenant, helo: nil,
                                       tls: false),
                recipients: [EnvelopeRecipient(address: email)], body: "8BITMIME", smtputf8: message.needsSMTPUTF8,
                tenant: tenant)
            let bytes = message.bytes
            return { try await writer.commit(bytes, envelope) }
        } received: { i, stored in
            items[i] = .init(email: rendered[i].0, id: stored.id.rawValue, message_id: rendered[i].1.messageID)
            return true
        }
        if let failure {
            let queued = items.compactMap { $0 }
            await limits?.giveBack(admitted, context, queued: queued.count)
            context.logger.error("spool commit failed: \(failure)")
            throw Problem.spoolRefused(
                failure, "\(queued.count) of \(rendered.count) message(s) were queued (listed in `queued`); "
                    + "retry the others later.",
                extensions: ["queued": .array(queued.map { .object(["email": .string($0.email), "id": .string($0.id)]) })])
        }
        let accepted = Accepted(accepted: items.count, messages: items.compactMap { $0 }, suppressed: suppressed)
        context.logger.info("messages queued", metadata: ["count": "\(accepted.accepted)"])
        return try APIInput.accepted(accepted, request: request, context: context)
    }
}

extension Problem {
    /// A spool commit that failed: 507 when the disk is full, else 503, with a detail
    /// saying so and what became of the request (`outcome`). The error itself is not
    /// shown (callers log it): it names paths and system calls, not what to do.
    static func spoolRefused(_ error: any Error, _ outcome: String, extensions: [String: ProblemValue] = [:])
        -> Problem
    {
        let status: HTTPResponse.Status = (error as? SpoolError)?.isDiskFull == true
            ? HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage") : .serviceUnavailable
        return Problem(status, "The spool is not accepting writes; " + outcome, extensions: extensions)
    }
}
