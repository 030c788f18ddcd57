import Campaigns
import CampaignStore
import Foundation
import Hummingbird
import NIOCore
import Postgres

/// The PostgreSQL stores behind the database-backed endpoints (lists, subscribers,
/// import). Hand one to ``HTTPAPI/makeRouter(spool:writer:verifier:hostname:databasePing:stores:)``
/// when a database is configured; without it those routes do not exist (404).
public struct HTTPStores: Sendable {
    public let tenants: TenantStore
    public let lists: ListStore
    public let subscribers: SubscriberStore
    public let suppressions: SuppressionStore
    public let bounces: BounceStore
    public let campaigns: CampaignStore
    /// Opens and clicks (`/t/o`, `/t/c`, `/v1/campaigns/{id}/links`).
    public let tracking: TrackingStore
    /// Expands campaigns on `send`/`resume`; nil: they are planned (`sending`) but wait
    /// for an expander (e.g. another node's, or ``CampaignExpander/resumeAll()``).
    public let expander: CampaignExpander?
    /// Current rate and estimated completion in campaign stats (nil: not shown).
    public let statsRecorder: CampaignStatsRecorder?
    /// Carries pause, resume and cancel to this node's spool at once (other nodes follow
    /// within their control interval); nil: only the status changes here.
    public let control: CampaignControl?
    /// Tenants' DKIM keys (`/v1/dkim-keys`); nil without an encryption secret to seal them.
    public let dkimKeys: DKIMKeyStore?
    /// Told when a tenant's keys change, so its next message is signed with them.
    public let tenantSigners: TenantDKIMSigners?
    /// Webhook endpoints and deliveries (`/v1/webhooks`); nil without an encryption
    /// secret to seal their secrets.
    public let webhooks: WebhookStore?
    /// Tenants' limits and quota counters (`/v1/tenant/limits`, the quota of every
    /// submission route).
    public let limits: TenantLimitsStore
    /// Tenants' SMTP AUTH users (`/v1/smtp-users`).
    public let smtpUsers: SMTPUserStore
    /// This node's SMTP side, which hashes their passwords and forgets a changed user at
    /// once; nil: `/v1/smtp-users` does not exist (a node without SMTP AUTH wiring).
    public let smtpUserAccounts: (any SMTPUserAccounts)?

    public init(_ db: PostgresClient, expander: CampaignExpander? = nil, statsRecorder: CampaignStatsRecorder? = nil,
                control: CampaignControl? = nil, sealer: SecretSealer? = nil, tenantSigners: TenantDKIMSigners? = nil,
                smtpUserAccounts: (any SMTPUserAccounts)? = nil) {
        self.smtpUserAccounts = smtpUserAccounts
        smtpUsers = SMTPUserStore(db)
        self.statsRecorder = statsRecorder
        self.control = control
        self.dkimKeys = sealer.map { DKIMKeyStore(db, sealer: $0) }
        self.webhooks = sealer.map { WebhookStore(db, sealer: $0) }
        self.tenantSigners = tenantSigners
        tenants = TenantStore(db)
        limits = TenantLimitsStore(db)
        lists = ListStore(db)
        subscribers = SubscriberStore(db)
        suppressions = SuppressionStore(db)
        bounces = BounceStore(db)
        tracking = TrackingStore(db)
        campaigns = CampaignStore(db, chunkSize: expander?.store.chunkSize ?? 1000)
        self.expander = expander
    }
}

/// API keys issued by `herald tenant create` / `key-add`, checked against the database
/// (SHA-256 of the key; revoked keys fail). The tenant string is the ``TenantID``'s
/// decimal description, which the database-backed routes read back with
/// ``HeraldRequestContext/databaseTenant()``.
public struct DatabaseAPIKeys: APIKeyVerifier {
    let store: TenantStore

    public init(_ store: TenantStore) { self.store = store }

    public func tenant(forKey key: String) async throws -> String? {
        try await store.authenticate(bearerKey: key)?.description
    }
}

extension HeraldRequestContext {
    /// The tenant as a database id. A key from the config file (`[[api_key]]`) names a
    /// tenant that has no lists or subscribers: 403, telling how to get a database key.
    func databaseTenant() throws -> TenantID {
        guard let tenant, let id = Int64(tenant), id > 0 else {
            throw Problem(.forbidden, "This API key comes from the config file and has no lists or subscribers; "
                + "use a key made with `herald tenant create NAME` (or `herald tenant key-add NAME`).")
        }
        return TenantID(id)
    }
}

/// One page of a keyset-paginated listing: `{"data": [...], "next": <cursor or null>}`
/// (`next` is written as `null` on the last page, never left out).
struct Page<Item: Encodable>: Encodable, ResponseEncodable {
    var data: [Item]
    var next: Int64?

    enum CodingKeys: String, CodingKey { case data, next }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(data, forKey: .data)
        try c.encode(next, forKey: .next)
    }
}

/// Helpers shared by the routes (most of them by the database-backed ones).
enum APIInput {
    /// Keyset pagination: the store was asked for `limit + 1` rows; keeps `limit`, each
    /// made an item by `item`, with the cursor of the last kept row when there was more
    /// (nil on the last page).
    static func page<Row, Item>(_ fetched: [Row], limit: Int, cursor: (Row) -> Int64,
                                item: (Row) throws -> Item) rethrows -> Page<Item> {
        let rows = fetched.prefix(limit)
        return Page(data: try rows.map(item), next: fetched.count > limit ? rows.last.map(cursor) : nil)
    }

    /// A listing route's page: `?limit=` (1 ... `max`) and `?after=`, then `fetch(after,
    /// limit + 1)`; a fetch that answers nil (what is listed from does not exist) is a 404
    /// naming `notFound`.
    static func page<Row, Item>(_ request: Request, max: Int, notFound: String = "", cursor: (Row) -> Int64,
                                item: (Row) throws -> Item,
                                fetch: (_ after: Int64?, _ limit: Int) async throws -> [Row]?) async throws -> Page<Item> {
        let limit = try limit(request, max: max)
        let after = try after(request)
        guard let found = try await fetch(after, limit + 1) else { throw Problem.notFound(notFound) }
        return try page(found, limit: limit, cursor: cursor, item: item)
    }

    /// `202 Accepted` with the object as JSON: the work it starts goes on after the reply.
    static func accepted(_ body: some ResponseEncodable, request: Request, context: some RequestContext) throws
        -> Response
    {
        var response = try body.response(from: request, context: context)
        response.status = .accepted
        return response
    }

    /// `201 Created` with the object as JSON and its `Location`.
    static func created(_ body: some ResponseEncodable, location: String, request: Request,
                        context: some RequestContext) throws -> Response {
        var response = try body.response(from: request, context: context)
        response.status = .created
        response.headers[.location] = location
        return response
    }

    /// Largest JSON body the list and subscriber endpoints take (a subscriber with its
    /// attributes fits many times over). Larger bodies are a 413 problem.
    static let maxJSONBody = 1024 * 1024

    /// Decodes a JSON body of at most `limit` bytes (413 beyond; 400 when malformed; 415
    /// when it is not sent as `application/json`, or a `+json` type).
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int = maxJSONBody,
                                     tooLarge: String = "for many subscribers, use POST /v1/lists/{id}/import with a CSV file")
        async throws -> T
    {
        guard isJSON(request.headers[.contentType]) else {
            throw Problem(.unsupportedMediaType, "Send the body as JSON with Content-Type: application/json (got "
                + "\(request.headers[.contentType].map { "\"\($0)\"" } ?? "none")).")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Problem(.contentTooLarge, "The request body is larger than \(limit) bytes; send less (\(tooLarge)).")
        }
        guard buffer.readableBytes > 0 else {
            throw Problem.badRequest("The request body is empty: send a JSON object (Content-Type: application/json).")
        }
        return try JSONDecoder().decode(T.self, from: Data(buffer: buffer))
    }

    /// `application/json` or `application/<anything>+json`, parameters (charset) aside.
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let type = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        return type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json"))
    }

    /// The path parameter `name` as a positive id. Anything else cannot name an object,
    /// so it is a 404, like an id that does not exist.
    static func id(_ context: HeraldRequestContext, _ name: String, what: String) throws -> Int64 {
        guard let text = context.parameters.get(name), let id = Int64(text), id > 0 else {
            throw Problem.notFound(what)
        }
        return id
    }

    /// `?limit=` (default `defaultValue`, 1 ... `max`).
    static func limit(_ request: Request, default defaultValue: Int = 100, max: Int) throws -> Int {
        guard let text = request.uri.queryParameters.get("limit") else { return defaultValue }
        guard let value = Int(text), value >= 1, value <= max else {
            throw Problem.badRequest("limit: give an integer from 1 to \(max) (got \"\(text)\")")
        }
        return value
    }

    /// `?after=` (a cursor: the `next` of the previous page; absent for the first page).
    static func after(_ request: Request) throws -> Int64? {
        guard let text = request.uri.queryParameters.get("after"), !text.isEmpty else { return nil }
        guard let value = Int64(text), value >= 0 else {
            throw Problem.badRequest("after: give the `next` cursor of the previous page, an integer (got \"\(text)\")")
        }
        return value
    }

    /// Runs a store call, turning a ``StoreError`` into its problem (422, 409, 404).
    static func store<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            throw Problem(error)
        }
    }
}

extension KeyedDecodingContainer {
    /// A PATCH body's field: nil when the key is left out (keep what is stored),
    /// `.some(nil)` for `null` (remove it), else the value.
    func decodePatch<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T?? {
        guard contains(key) else { return nil }
        if try decodeNil(forKey: key) { return .some(nil) }
        return .some(try decode(T.self, forKey: key))
    }
}

extension Problem {
    init(_ error: StoreError) {
        switch error.kind {
        case .invalid: self = .unprocessable(error.message)
        case .conflict: self = Problem(.conflict, error.message)
        case .notFound: self = Problem(.notFound, error.message)
        }
    }
}

/// Lists:
/// - `POST /v1/lists {"name"}` → 201 with the list;
/// - `GET /v1/lists?after=&limit=` → `{"data": [...], "next": <cursor or null>}` in id order;
/// - `GET /v1/lists/{id}`, `PATCH /v1/lists/{id} {"name"}` (rename);
/// - `DELETE /v1/lists/{id}` → 204 (memberships go; the subscribers stay with the tenant).
///
/// A list is `{"id", "name", "subscriber_count", "created_at", "updated_at"}`.
/// Another tenant's list id answers 404 exactly like one that does not exist.
public struct ListsV1: Sendable {
    public static let maxPageSize = 500

    struct ListJSON: Encodable, ResponseEncodable {
        var id: Int64
        var name: String
        var subscriber_count: Int
        var created_at: Date
        var updated_at: Date

        init(_ list: MailingList) {
            id = list.id
            name = list.name
            subscriber_count = list.subscriberCount
            created_at = list.createdAt
            updated_at = list.updatedAt
        }
    }

    struct NameBody: Decodable {
        var name: String
    }

    let stores: HTTPStores

    public init(stores: HTTPStores) { self.stores = stores }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let lists = stores.lists
        group.post("lists") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let body = try await APIInput.decode(NameBody.self, from: request)
            let list = try await APIInput.store { try await lists.createList(tenant: tenant, name: body.name) }
            return try APIInput.created(ListJSON(list), location: "/v1/lists/\(list.id)", request: request, context: context)
        }
        group.get("lists") { request, context -> Page<ListJSON> in
            let tenant = try context.databaseTenant()
            return try await APIInput.page(request, max: Self.maxPageSize, cursor: \.id, item: ListJSON.init) {
                try await lists.lists(tenant: tenant, after: $0, limit: $1)
            }
        }
        group.get("lists/:id") { _, context -> ListJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "list")
            guard let list = try await lists.list(tenant: tenant, id: id) else { throw Problem.notFound("list \(id)") }
            return ListJSON(list)
        }
        group.patch("lists/:id") { request, context -> ListJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "list")
            let body = try await APIInput.decode(NameBody.self, from: request)
            guard let list = try await APIInput.store({ try await lists.renameList(tenant: tenant, id: id, name: body.name) })
            else { throw Problem.notFound("list \(id)") }
            return ListJSON(list)
        }
        group.delete("lists/:id") { _, context -> HTTPResponse.Status in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "list")
            guard try await lists.deleteList(tenant: tenant, id: id) else { throw Problem.notFound("list \(id)") }
            return .noContent
        }
    }
}
