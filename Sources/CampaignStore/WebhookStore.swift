import Foundation
import Postgres
import Rendering

/// What a webhook endpoint can subscribe to (issue #14). `test` is the event of a
/// test-send: it goes to the one endpoint it was sent to and cannot be subscribed to.
public enum WebhookEventType: String, Sendable, CaseIterable, Codable {
    /// A message was committed to the spool (one event per recipient).
    case accepted
    /// The receiving server accepted the message for a recipient.
    case delivered
    /// A temporary failure; the recipient is retried.
    case deferred
    /// A permanent refusal (5xx) during delivery, or a bounce report received later.
    case bounced
    /// Herald gave up without a permanent refusal (expired, too many attempts).
    case failed
    /// A complaint (feedback report) about a message.
    case complained
    /// A subscriber unsubscribed through the unsubscribe link.
    case unsubscribed
    /// A tracked campaign message was opened / a tracked link clicked.
    case opened, clicked
    case test

    /// The types an endpoint may subscribe to.
    public static let subscribable: [WebhookEventType] = allCases.filter { $0 != .test }
}

/// A value in an event's `data` object.
public enum WebhookValue: Sendable, Equatable, Encodable {
    case string(String)
    case int(Int64)
    case bool(Bool)

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let i): try c.encode(i)
        case .bool(let b): try c.encode(b)
        }
    }
}

/// One event for the outbox: the tenant it belongs to, its type, a de-duplication key
/// (the same happening recorded twice, e.g. replayed after a crash, has the same key and
/// is stored once) and its `data` object.
public struct WebhookEvent: Sendable, Equatable {
    public var tenant: TenantID
    public var type: WebhookEventType
    public var key: String
    public var data: [String: WebhookValue]
    public var occurredAt: Date

    public init(tenant: TenantID, type: WebhookEventType, key: String, data: [String: WebhookValue], occurredAt: Date) {
        self.tenant = tenant
        self.type = type
        self.key = key
        self.data = data
        self.occurredAt = occurredAt
    }

    /// `data` as JSON text (keys sorted).
    public var dataJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(data)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// A tenant's webhook endpoint as the API shows it (never the secret).
public struct WebhookEndpoint: Sendable, Equatable {
    public var id: Int64
    public var url: String
    public var description: String
    public var events: [WebhookEventType]
    public var enabled: Bool
    /// Why Herald disabled it (nil when enabled, or disabled over the API).
    public var disabledReason: String?
    public var disabledAt: Date?
    /// The first failed attempt since the last success (nil: not failing).
    public var failingSince: Date?
    public var createdAt: Date
    public var updatedAt: Date
}

/// One event's delivery to one endpoint, for `GET /v1/webhooks/{id}/deliveries`.
public struct WebhookDelivery: Sendable, Equatable {
    public enum State: String, Sendable { case pending, delivered, failed }
    public var id: Int64
    public var eventID: Int64
    public var eventType: String
    public var state: State
    public var attempts: Int
    public var nextAttemptAt: Date?
    public var lastAttemptAt: Date?
    public var responseStatus: Int?
    public var lastError: String?
    public var durationMs: Int?
    public var createdAt: Date
}

/// A delivery the dispatcher leased, with what it needs to send it.
public struct WebhookJob: Sendable, Equatable {
    public var deliveryID: Int64
    public var endpointID: Int64
    public var tenant: TenantID
    public var attempts: Int
    public var eventID: Int64
    public var eventType: String
    public var data: String
    public var occurredAt: Date
    public var url: String
    /// The sealed secret (``WebhookStore/secret(of:)`` opens it).
    public var sealedSecret: String
}

/// Webhook endpoints, the event outbox and the deliveries (`webhook_*` tables).
///
/// The outbox is a table: an event is durable once its insert commits, and it is
/// inserted only for tenants with an enabled endpoint subscribed to its type, together
/// with one `pending` delivery per such endpoint (so an endpoint made later does not
/// receive events from before it existed, and a disabled one receives none while it is
/// disabled). Events that come from a database change (bounce and complaint reports,
/// unsubscribes, opens and clicks) are inserted in that change's transaction; delivery
/// events arrive in batches (``enqueue(_:)``) and are replayed from the delivery log
/// after a crash, which the unique `(tenant_id, key)` makes harmless.
///
/// Deliveries are leased (`leased_until`), so several nodes share the outbox without
/// sending one delivery twice at once; a node killed mid-request leaves a lease that
/// expires, and the delivery is sent again (at least once).
public struct WebhookStore: Sendable {
    public let db: PostgresClient
    let sealer: SecretSealer

    public init(_ db: PostgresClient, sealer: SecretSealer) {
        self.db = db
        self.sealer = sealer
    }

    /// The sealing context: a tenant's secrets open only as that tenant's.
    static func context(tenant: TenantID) -> String { "webhook:\(tenant.rawValue)" }

    /// Opens a job's secret.
    public func secret(of job: WebhookJob) throws -> [UInt8] {
        try sealer.open(job.sealedSecret, context: Self.context(tenant: job.tenant))
    }

    // MARK: - Endpoints

    /// An endpoint URL: `http` or `https`, a host, at most 2,000 characters, no user
    /// information (a password in a URL ends up in logs).
    public static func validateURL(_ text: String) throws(StoreError) -> URL {
        guard text.count <= 2000, let url = URL(string: text), let scheme = url.scheme?.lowercased(),
              ["http", "https"].contains(scheme), let host = url.host, !host.isEmpty
        else {
            throw StoreError(.invalid, "url: an http:// or https:// URL with a host (got \"\(text.prefix(200))\")")
        }
        guard url.user == nil, url.password == nil else {
            throw StoreError(.invalid, "url: no user name or password in the URL; verify the signature instead")
        }
        return url
    }

    static func validateEvents(_ names: [String]) throws(StoreError) -> [WebhookEventType] {
        var types: [WebhookEventType] = []
        for name in names {
            guard let type = WebhookEventType(rawValue: name), type != .test else {
                throw StoreError(.invalid, "events: unknown event type \"\(name)\" (one of "
                                 + WebhookEventType.subscribable.map(\.rawValue).joined(separator: ", ") + ")")
            }
            if !types.contains(type) { types.append(type) }
        }
        guard !types.isEmpty else { throw StoreError(.invalid, "events: name at least one event type") }
        return types
    }

    static let columns = """
        id, url, description, array_to_string(events, ','), enabled, disabled_reason, disabled_at, failing_since, created_at, updated_at
        """

    static func endpoint(_ row: [String?]) throws -> WebhookEndpoint {
        WebhookEndpoint(id: try PGText.require(row, 0, PGText.int64), url: try PGText.require(row, 1),
                        description: try PGText.require(row, 2),
                        events: try PGText.require(row, 3).split(separator: ",")
                            .compactMap { WebhookEventType(rawValue: String($0)) },
                        enabled: try PGText.require(row, 4, PGText.boolean), disabledReason: row[5],
                        disabledAt: PGText.timestamp(row[6]), failingSince: PGText.timestamp(row[7]),
                        createdAt: try PGText.require(row, 8, PGText.timestamp),
                        updatedAt: try PGText.require(row, 9, PGText.timestamp))
    }

    /// Makes an endpoint; returns it with its signing secret (64 hex digits), which is
    /// shown this once and kept sealed.
    public func create(tenant: TenantID, url: String, description: String, events: [String]) async throws
        -> (endpoint: WebhookEndpoint, secret: String)
    {
        _ = try Self.validateURL(url)
        let types = try Self.validateEvents(events)
        guard description.count <= 500 else { throw StoreError(.invalid, "description: at most 500 characters") }
        let secret = Crypto.randomBytes(32).map { String(format: "%02x", $0) }.joined()
        let sealed = try sealer.seal(Array(secret.utf8), context: Self.context(tenant: tenant))
        guard let row = try await db.query("""
            INSERT INTO webhook_endpoints (tenant_id, url, description, events, secret)
            VALUES ($1, $2, $3, $4::text[], $5) RETURNING \(Self.columns)
            """, [tenant.parameter, url, description, PGText.textArray(types.map(\.rawValue)), sealed]).first
        else { throw StoreError(.invalid, "the endpoint was not stored") }
        return (try Self.endpoint(row), secret)
    }

    public func endpoints(tenant: TenantID, after: Int64?, limit: Int) async throws -> [WebhookEndpoint] {
        try await db.query("""
            SELECT \(Self.columns) FROM webhook_endpoints WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3
            """, [tenant.parameter, String(after ?? 0), String(limit)]).map(Self.endpoint)
    }

    public func endpoint(tenant: TenantID, id: Int64) async throws -> WebhookEndpoint? {
        try await db.query("SELECT \(Self.columns) FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
                           [tenant.parameter, String(id)]).first.map(Self.endpoint)
    }

    /// The fields a `PATCH` may change; nil leaves one as it is.
    public struct Update: Sendable {
        public var url: String?
        public var description: String?
        public var events: [String]?
        /// true re-enables (clearing the reason and the failure streak, and making the
        /// pending deliveries due now); false disables without a reason.
        public var enabled: Bool?
        public init(url: String? = nil, description: String? = nil, events: [String]? = nil, enabled: Bool? = nil) {
            self.url = url
            self.description = description
            self.events = events
            self.enabled = enabled
        }
    }

    /// Changes an endpoint; nil when the tenant has no such endpoint.
    public func update(tenant: TenantID, id: Int64, _ update: Update) async throws -> WebhookEndpoint? {
        if let url = update.url { _ = try Self.validateURL(url) }
        var events: [WebhookEventType]?
        if let names = update.events { events = try Self.validateEvents(names) }
        let types = events
        if let d = update.description, d.count > 500 { throw StoreError(.invalid, "description: at most 500 characters") }
        let enabled = update.enabled.map { $0 ? "true" : "false" }
        return try await db.transaction { connection in
            guard let row = try connection.query("""
                UPDATE webhook_endpoints SET url = coalesce($3, url), description = coalesce($4, description),
                    events = coalesce($5::text[], events),
                    disabled_reason = CASE WHEN $6::boolean IS NULL THEN disabled_reason ELSE NULL END,
                    disabled_at = CASE WHEN $6::boolean IS NULL THEN disabled_at
                                       WHEN $6::boolean THEN NULL ELSE coalesce(disabled_at, now()) END,
                    failing_since = CASE WHEN $6::boolean THEN NULL ELSE failing_since END,
                    enabled = coalesce($6::boolean, enabled), updated_at = now()
                WHERE tenant_id = $1 AND id = $2 RETURNING \(Self.columns)
                """, [tenant.parameter, String(id), update.url, update.description,
                      types.map { PGText.textArray($0.map(\.rawValue)) }, enabled]).rows.first
            else { return nil }
            if update.enabled == true {
                try connection.execute("""
                    UPDATE webhook_deliveries SET next_attempt_at = now()
                    WHERE endpoint_id = $1 AND state = 'pending'
                    """, [String(id)])
            }
            return try Self.endpoint(row)
        }
    }

    /// Deletes an endpoint and its deliveries; false when the tenant has no such endpoint.
    public func delete(tenant: TenantID, id: Int64) async throws -> Bool {
        try await db.execute("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
                             [tenant.parameter, String(id)]) == 1
    }

    /// Queues a `test` event for this endpoint alone; returns the event id, nil when the
    /// tenant has no such endpoint. A disabled endpoint is ``StoreError`` `.conflict`.
    public func sendTest(tenant: TenantID, id: Int64) async throws -> Int64? {
        guard let endpoint = try await endpoint(tenant: tenant, id: id) else { return nil }
        guard endpoint.enabled else {
            throw StoreError(.conflict, "the endpoint is disabled; enable it (PATCH \"enabled\": true) first")
        }
        let event = WebhookEvent(tenant: tenant, type: .test, key: "test:\(UUID().uuidString)",
                                 data: ["endpoint_id": .int(id), "message": .string("a test event from Herald")],
                                 occurredAt: Date())
        return try await db.transaction { connection in
            guard let row = try connection.query("""
                INSERT INTO webhook_events (tenant_id, type, key, data, occurred_at)
                VALUES ($1, 'test', $2, $3, $4) RETURNING id
                """, [tenant.parameter, event.key, event.dataJSON, PGText.timestamp(event.occurredAt)]).rows.first
            else { return nil }
            let eventID = try PGText.require(row, 0, PGText.int64)
            try connection.execute("""
                INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id) VALUES ($1, $2, $3)
                """, [tenant.parameter, String(id), String(eventID)])
            return eventID
        }
    }

    static let deliveryColumns = """
        d.id, d.event_id, e.type, d.state, d.attempts, d.next_attempt_at, d.last_attempt_at, d.response_status,
        d.last_error, d.duration_ms, d.created_at
        """

    /// The endpoint's deliveries, newest first (`before`: keyset cursor); nil when the
    /// tenant has no such endpoint.
    public func deliveries(tenant: TenantID, endpoint id: Int64, before: Int64?, limit: Int) async throws
        -> [WebhookDelivery]?
    {
        guard try await endpoint(tenant: tenant, id: id) != nil else { return nil }
        return try await db.query("""
            SELECT \(Self.deliveryColumns) FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
            WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND d.id < $3 ORDER BY d.id DESC LIMIT $4
            """, [tenant.parameter, String(id), String(before ?? Int64.max), String(limit)]).map { row in
            let state = try PGText.require(row, 3, WebhookDelivery.State.init(rawValue:))
            return WebhookDelivery(id: try PGText.require(row, 0, PGText.int64),
                                   eventID: try PGText.require(row, 1, PGText.int64),
                                   eventType: try PGText.require(row, 2), state: state,
                                   attempts: try PGText.require(row, 4, PGText.int),
                                   nextAttemptAt: state == .pending ? PGText.timestamp(row[5]) : nil,
                                   lastAttemptAt: PGText.timestamp(row[6]), responseStatus: PGText.int(row[7]),
                                   lastError: row[8], durationMs: PGText.int(row[9]),
                                   createdAt: try PGText.require(row, 10, PGText.timestamp))
        }
    }

    // MARK: - The outbox

    /// Stores events (one transaction) for the tenants that have an enabled endpoint
    /// subscribed to their type, with a delivery per such endpoint. An event whose key
    /// is stored already is skipped. Returns the events stored.
    @discardableResult
    public func enqueue(_ events: [WebhookEvent]) async throws -> Int {
        guard !events.isEmpty else { return 0 }
        return try await db.transaction { connection in try Self.enqueue(connection, events) }
    }

    /// ``enqueue(_:)`` inside the caller's transaction (so the event commits with the
    /// change it reports).
    @discardableResult
    public static func enqueue(_ connection: PostgresConnection, _ events: [WebhookEvent]) throws -> Int {
        guard !events.isEmpty else { return 0 }
        let rows = try connection.query("""
            WITH u AS (
                SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
                       AS u(tenant_id, type, key, data, occurred_at)
                WHERE EXISTS (SELECT 1 FROM webhook_endpoints w
                              WHERE w.tenant_id = u.tenant_id AND w.enabled AND u.type = ANY (w.events))
            ), e AS (
                INSERT INTO webhook_events (tenant_id, type, key, data, occurred_at)
                SELECT tenant_id, type, key, data, occurred_at FROM u
                ON CONFLICT (tenant_id, key) DO NOTHING
                RETURNING id, tenant_id, type
            ), d AS (
                INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id)
                SELECT e.tenant_id, w.id, e.id FROM e
                JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id AND w.enabled AND e.type = ANY (w.events)
            )
            SELECT count(*) FROM e
            """, [PGText.array(events.map(\.tenant.rawValue)), PGText.textArray(events.map(\.type.rawValue)),
                  PGText.textArray(events.map(\.key)), PGText.textArray(events.map(\.dataJSON)),
                  PGText.textArray(events.map { PGText.timestamp($0.occurredAt) })]).rows
        return try rows.first.map { try PGText.require($0, 0, PGText.int) } ?? 0
    }

    /// Deliveries not yet delivered or given up, over all tenants (`/metrics`).
    public func backlog() async throws -> Int {
        let row = try await db.query("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'").first
        return try row.map { try PGText.require($0, 0, PGText.int) } ?? 0
    }

    // MARK: - Dispatching

    /// Leases up to `limit` due deliveries of enabled endpoints for `lease`, at most
    /// `perEndpoint - busy[endpoint]` of each endpoint (the endpoint's concurrency limit
    /// minus what this node is sending it now), oldest first.
    public func claim(limit: Int, perEndpoint: Int, busy: [Int64: Int], lease: Duration) async throws -> [WebhookJob] {
        let busyIDs = Array(busy.keys)
        return try await db.query("""
            WITH candidates AS (
                SELECT id FROM (
                    SELECT d.id, d.endpoint_id, d.next_attempt_at,
                           row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS n
                    FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
                    WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND w.enabled
                      AND (d.leased_until IS NULL OR d.leased_until < now())
                ) c
                LEFT JOIN unnest($1::bigint[], $2::int[]) AS b(endpoint_id, busy) ON b.endpoint_id = c.endpoint_id
                WHERE c.n <= $3::int - coalesce(b.busy, 0)
                ORDER BY c.next_attempt_at, c.id LIMIT $4
            ), locked AS (
                SELECT d.id FROM webhook_deliveries d JOIN candidates USING (id)
                WHERE d.state = 'pending' AND (d.leased_until IS NULL OR d.leased_until < now())
                FOR UPDATE OF d SKIP LOCKED
            )
            UPDATE webhook_deliveries d SET leased_until = now() + make_interval(secs => $5::double precision)
            FROM locked, webhook_events e, webhook_endpoints w
            WHERE d.id = locked.id AND e.id = d.event_id AND w.id = d.endpoint_id
            RETURNING d.id, d.endpoint_id, d.tenant_id, d.attempts, e.id, e.type, e.data, e.occurred_at, w.url, w.secret
            """, [PGText.array(busyIDs), PGText.array(busyIDs.map { Int64(busy[$0]!) }), String(perEndpoint),
                  String(limit), Self.seconds(lease)])
            .map { row in
                WebhookJob(deliveryID: try PGText.require(row, 0, PGText.int64),
                           endpointID: try PGText.require(row, 1, PGText.int64),
                           tenant: TenantID(try PGText.require(row, 2, PGText.int64)),
                           attempts: try PGText.require(row, 3, PGText.int), eventID: try PGText.require(row, 4, PGText.int64),
                           eventType: try PGText.require(row, 5), data: try PGText.require(row, 6),
                           occurredAt: try PGText.require(row, 7, PGText.timestamp), url: try PGText.require(row, 8),
                           sealedSecret: try PGText.require(row, 9))
            }
    }

    /// One attempt's result.
    public struct AttemptResult: Sendable {
        public var status: Int?
        public var error: String?
        public var durationMs: Int
        public init(status: Int?, error: String?, durationMs: Int) {
            self.status = status
            self.error = error
            self.durationMs = durationMs
        }
    }

    /// A 2xx answer: the delivery is done and the endpoint's failure streak ends.
    public func recordSuccess(_ job: WebhookJob, _ result: AttemptResult) async throws {
        _ = try await db.transaction { connection in
            try connection.execute("""
                UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, leased_until = NULL,
                    last_attempt_at = now(), response_status = $2, last_error = NULL, duration_ms = $3
                WHERE id = $1
                """, [String(job.deliveryID), result.status.map(String.init), String(result.durationMs)])
            try connection.execute("""
                UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL
                """, [String(job.endpointID)])
        }
    }

    /// A failed attempt: the delivery is due again after `retryAfter`, or `failed` when
    /// it is older than `giveUpAfter`; the endpoint's failure streak starts (or goes on),
    /// and an endpoint failing for longer than `disableAfter` is disabled with a reason.
    /// Returns the reason when this call disabled the endpoint.
    public func recordFailure(_ job: WebhookJob, _ result: AttemptResult, retryAfter: Duration,
                              giveUpAfter: Duration, disableAfter: Duration) async throws -> String? {
        let error = result.error.map { String($0.prefix(1000)) }
        return try await db.transaction { connection in
            try connection.execute("""
                UPDATE webhook_deliveries SET attempts = attempts + 1, leased_until = NULL, last_attempt_at = now(),
                    response_status = $2, last_error = $3, duration_ms = $4,
                    next_attempt_at = now() + make_interval(secs => $5::double precision),
                    state = CASE WHEN created_at < now() - make_interval(secs => $6::double precision)
                                 THEN 'failed' ELSE 'pending' END
                WHERE id = $1 AND state = 'pending'
                """, [String(job.deliveryID), result.status.map(String.init), error, String(result.durationMs),
                      Self.seconds(retryAfter), Self.seconds(giveUpAfter)])
            let reason = "failing since %s: " + (error ?? result.status.map { "HTTP \($0)" } ?? "no answer")
            let row = try connection.query("""
                UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()),
                    enabled = enabled AND coalesce(failing_since, now()) >= now() - make_interval(secs => $2::double precision),
                    disabled_at = CASE WHEN enabled AND coalesce(failing_since, now()) < now() - make_interval(secs => $2::double precision)
                                       THEN now() ELSE disabled_at END,
                    disabled_reason = CASE WHEN enabled AND coalesce(failing_since, now()) < now() - make_interval(secs => $2::double precision)
                                           THEN replace($3, '%s', to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
                                           ELSE disabled_reason END
                WHERE id = $1
                RETURNING disabled_at = now() AND NOT enabled, disabled_reason
                """, [String(job.endpointID), Self.seconds(disableAfter), reason]).rows.first
            guard let row, PGText.bool(row[0]) else { return nil }
            return row[1]
        }
    }

    /// Deletes events (and their deliveries) older than `retention` that have no
    /// pending delivery; returns the events deleted.
    @discardableResult
    public func prune(retention: Duration) async throws -> Int {
        try await db.execute("""
            DELETE FROM webhook_events e WHERE e.created_at < now() - make_interval(secs => $1::double precision)
              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.state = 'pending')
            """, [Self.seconds(retention)])
    }

    /// A duration as a `double precision` parameter of seconds (for `make_interval`).
    static func seconds(_ d: Duration) -> String {
        String(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }
}
