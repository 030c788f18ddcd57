import CampaignStore
import Delivery
import Foundation
import Hummingbird
import Spool

/// The admin API, `/v1/admin/…`: the node's queue for its postmaster (the console's
/// postmaster view is its client). It is the node's, across tenants, so it wants an
/// admin key (`[[admin_key]]` in the config, kept as a SHA-256 like `[[api_key]]`): no
/// tenant key opens it (403, so that the console can tell a tenant key from a wrong one
/// and does not sign out), and an admin key opens nothing else (it is no tenant's key).
///
/// - `GET /v1/admin/queue`: counts and the shape of each destination queue (depth,
///   oldest, window, back-off, last reply), from the queue manager's index.
/// - `GET /v1/admin/held?limit=`: messages on hold, oldest first, and how many in all.
/// - `POST /v1/admin/messages/{id}/hold`, `…/release`, `DELETE /v1/admin/messages/{id}`:
///   through the running queue manager (``QueueManager/hold(_:)``), so its index, the
///   spool and the campaign stats change together; 409 while an attempt is in flight.
/// - `GET /v1/admin/log?limit=`: the newest delivery-log lines, newest first.
/// - `GET`/`PATCH /v1/admin/tenants/{name}/limits`: a database tenant's limits
///   (``AdminTenantLimitsV1``).
///
/// On a node that does not deliver (`[delivery] enabled = false`) the queue routes
/// answer 503: there is no queue manager to ask (`herald queue …` still works).
public struct AdminV1: Sendable {
    public static let maxHeldPage = 1000
    public static let maxLogLines = 1000

    let queue: QueueManager?
    /// `<log dir>/delivery.jsonl`; nil = no delivery log.
    let logPath: String?

    public init(queue: QueueManager?, logPath: String?) {
        self.queue = queue
        self.logPath = logPath
    }

    struct DestinationJSON: Encodable {
        var name: String
        var messages: Int
        var recipients: Int
        var deferred: Int
        var oldest: Date?
        var active: Int
        var window: Double?
        var limit: Int?
        var backoff_until: Date?
        var backoff_reason: String?
        var last_reply: String?

        init(_ d: QueueManager.DestinationView) {
            name = d.name
            messages = d.messages
            recipients = d.recipients
            deferred = d.deferred
            oldest = d.oldest
            active = d.active
            window = d.window
            limit = d.limit
            backoff_until = d.backoffUntil
            backoff_reason = d.backoffReason
            last_reply = d.lastReply
        }

        // Absent values are written as null (the console and scripts read every key).
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(messages, forKey: .messages)
            try c.encode(recipients, forKey: .recipients)
            try c.encode(deferred, forKey: .deferred)
            try c.encode(oldest, forKey: .oldest)
            try c.encode(active, forKey: .active)
            try c.encode(window, forKey: .window)
            try c.encode(limit, forKey: .limit)
            try c.encode(backoff_until, forKey: .backoff_until)
            try c.encode(backoff_reason, forKey: .backoff_reason)
            try c.encode(last_reply, forKey: .last_reply)
        }

        enum CodingKeys: String, CodingKey {
            case name, messages, recipients, deferred, oldest, active, window, limit, backoff_until, backoff_reason,
                 last_reply
        }
    }

    struct QueueJSON: Encodable, ResponseEncodable {
        var time: Date
        var messages: Int
        var in_flight: Int
        var held: Int
        var held_campaigns: [String: Int]
        var destinations: [DestinationJSON]
    }

    struct RecipientJSON: Encodable {
        var address: String
        var state: String
        var attempts: Int
        var last_reply: String?
    }

    struct MessageJSON: Encodable, ResponseEncodable {
        var id: String
        var queue: String
        var arrival: Date
        var sender: String
        var size: Int
        var tenant: String?
        var campaign: String?
        var recipients: [RecipientJSON]

        init(_ e: Envelope, queue: SpoolQueue) {
            id = e.id.rawValue
            self.queue = queue.rawValue
            arrival = e.arrival
            sender = e.sender
            size = e.size
            tenant = e.tenant
            campaign = e.campaign
            recipients = e.recipients.map {
                RecipientJSON(address: $0.address, state: $0.state.rawValue, attempts: $0.attempts, last_reply: $0.lastReply)
            }
        }
    }

    struct HeldJSON: Encodable, ResponseEncodable {
        var data: [MessageJSON]
        var total: Int
    }

    struct LogJSON: Encodable, ResponseEncodable {
        var data: [LogLineJSON]
    }

    struct LogLineJSON: Encodable {
        var time: Date
        var queue_id: String
        var recipient: String
        var domain: String
        var result: String
        var code: Int?
        var enhanced: String?
        var reply: String?
        var mx_host: String?
        var attempt: Int
        var tenant: String?
        var campaign: String?

        init(_ e: DeliveryLog.Entry) {
            time = e.time
            queue_id = e.queueId
            recipient = e.recipient
            domain = e.domain
            result = e.result
            code = e.code
            enhanced = e.enhanced
            reply = e.reply
            mx_host = e.mxHost
            attempt = e.attempt
            tenant = e.tenant
            campaign = e.campaign
        }
    }

    /// - Parameter tenantKeys: the tenant keys, only to answer 403 rather than 401 to one.
    /// - Parameter stores: with a database, the tenants' limits are set here too
    ///   (``AdminTenantLimitsV1``).
    public func add(to router: Router<HeraldRequestContext>, adminKeys: AdminKeys, tenantKeys: any APIKeyVerifier,
                    stores: HTTPStores? = nil) {
        let admin = router.group("v1/admin").add(middleware: AdminAuthMiddleware(keys: adminKeys, tenantKeys: tenantKeys))
        if let stores { AdminTenantLimitsV1(tenants: stores.tenants, limits: stores.limits).add(to: admin) }
        let queue = self.queue
        let logPath = self.logPath
        @Sendable func manager() throws -> QueueManager {
            guard let queue else {
                throw Problem(.serviceUnavailable,
                              "This node does not deliver ([delivery] enabled = false): it has no queue manager; use herald queue … on it.")
            }
            return queue
        }
        @Sendable func messageID(_ context: HeraldRequestContext) throws -> QueueID {
            let text = context.parameters.get("id") ?? ""
            guard let id = QueueID(text) else { throw Problem.badRequest("\(text): not a queue id") }
            return id
        }
        @Sendable func steer(_ body: () async throws -> Envelope) async throws -> Envelope {
            do {
                return try await body()
            } catch let error as QueueManager.PostmasterError {
                switch error.kind {
                case .notFound: throw Problem(.notFound, error.description)
                case .busy: throw Problem(.conflict, error.description, headers: [.retryAfter: "1"])
                }
            }
        }

        admin.get("queue") { _, _ -> QueueJSON in
            let q = try manager()
            let v = await q.postmasterView()
            return QueueJSON(time: v.time, messages: v.messages, in_flight: v.inFlight, held: v.held,
                             held_campaigns: v.heldCampaigns, destinations: v.destinations.map(DestinationJSON.init))
        }
        admin.get("held") { request, _ -> HeldJSON in
            let limit = try APIInput.limit(request, max: Self.maxHeldPage)
            let q = try manager()
            let held = await q.heldMessages(limit: limit)
            return HeldJSON(data: held.messages.map { MessageJSON($0, queue: .hold) }, total: held.total)
        }
        admin.post("messages/:id/hold") { _, context -> MessageJSON in
            let id = try messageID(context)
            let q = try manager()
            return MessageJSON(try await steer { try await q.hold(id) }, queue: .hold)
        }
        admin.post("messages/:id/release") { _, context -> MessageJSON in
            let id = try messageID(context)
            let q = try manager()
            return MessageJSON(try await steer { try await q.release(id) }, queue: .queue)
        }
        admin.delete("messages/:id") { _, context -> Response in
            let id = try messageID(context)
            let q = try manager()
            _ = try await steer { try await q.delete(id) }
            return Response(status: .noContent)
        }
        admin.get("log") { request, _ -> LogJSON in
            let limit = try APIInput.limit(request, max: Self.maxLogLines)
            guard let logPath else { return LogJSON(data: []) }
            let entries = DeliveryLog.entries(at: logPath, since: .distantPast, limit: limit)
            return LogJSON(data: entries.reversed().map(LogLineJSON.init))
        }
    }
}

/// The admin keys (`[[admin_key]] name, sha256`): SHA-256 digests only, like
/// ``StaticAPIKeys``.
public struct AdminKeys: Sendable {
    let names: [String: String]   // sha256 hex -> name

    public init(_ keys: [(name: String, sha256: String)]) {
        names = Dictionary(keys.map { ($0.sha256.lowercased(), $0.name) }, uniquingKeysWith: { a, _ in a })
    }

    /// The key's name, or nil when it is not an admin key.
    func name(forKey key: String) -> String? { names[APIKey.hash(key)] }
}

/// `Authorization: Bearer <admin key>`, or a 401 problem (no key, an unknown key), or
/// 403 for a tenant's key.
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = HeraldRequestContext
    let keys: AdminKeys
    let tenantKeys: any APIKeyVerifier

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer realm=\"herald-admin\""
        guard let value = request.headers[.authorization], value.lowercased().hasPrefix("bearer "),
              case let key = value.dropFirst(7).trimmingCharacters(in: .whitespaces), !key.isEmpty
        else {
            throw Problem(.unauthorized, "Send an admin key ([[admin_key]] in the config) as: Authorization: Bearer <key>",
                          headers: headers)
        }
        guard let name = keys.name(forKey: key) else {
            if (try? await tenantKeys.tenant(forKey: key)) ?? nil != nil {
                throw Problem(.forbidden, "This is a tenant's API key; the admin API wants an admin key ([[admin_key]] in the config).")
            }
            throw Problem(.unauthorized, "This admin key is not valid.", headers: headers)
        }
        var context = context
        context.logger[metadataKey: "admin"] = "\(name)"
        return try await next(request, context)
    }
}
