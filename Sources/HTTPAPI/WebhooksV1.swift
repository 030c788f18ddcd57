import CampaignStore
import Foundation
import Hummingbird

/// A tenant's webhook endpoints (issue #14; the sending side is the `Webhooks` module):
/// - `POST /v1/webhooks {"url", "events": [...], "description"?}` → 201 with the endpoint
///   and its `secret` (shown only here: it signs every request, see docs/webhooks.md);
/// - `GET /v1/webhooks?after=&limit=` → `{"data": [...], "next"}`; `GET /v1/webhooks/{id}`;
/// - `PATCH /v1/webhooks/{id} {"url"?, "events"?, "description"?, "enabled"?}`:
///   `"enabled": true` re-enables an endpoint Herald disabled (its pending deliveries
///   are due at once), `false` pauses it;
/// - `DELETE /v1/webhooks/{id}` → 204 (its pending deliveries go with it);
/// - `POST /v1/webhooks/{id}/test` → 202 `{"event_id"}`: a `test` event for this endpoint;
/// - `GET /v1/webhooks/{id}/deliveries?after=&limit=` → the latest deliveries first, with
///   their state (`pending`, `delivered`, `failed`), attempts, last status and error.
///
/// An endpoint is `{"id", "url", "description", "events", "enabled", "disabled_reason",
/// "disabled_at", "failing_since", "created_at", "updated_at"}`. Another tenant's
/// endpoint is a 404, like one that does not exist.
public struct WebhooksV1: Sendable {
    public static let maxPageSize = 1000

    struct EndpointJSON: Encodable, ResponseEncodable {
        var endpoint: WebhookEndpoint
        /// Only in the creation's answer.
        var secret: String?

        enum CodingKeys: String, CodingKey {
            case id, url, description, events, enabled, disabled_reason, disabled_at, failing_since, created_at,
                 updated_at, secret
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(endpoint.id, forKey: .id)
            try c.encode(endpoint.url, forKey: .url)
            try c.encode(endpoint.description, forKey: .description)
            try c.encode(endpoint.events.map(\.rawValue), forKey: .events)
            try c.encode(endpoint.enabled, forKey: .enabled)
            try c.encode(endpoint.disabledReason, forKey: .disabled_reason)
            try c.encode(endpoint.disabledAt, forKey: .disabled_at)
            try c.encode(endpoint.failingSince, forKey: .failing_since)
            try c.encode(endpoint.createdAt, forKey: .created_at)
            try c.encode(endpoint.updatedAt, forKey: .updated_at)
            try c.encodeIfPresent(secret, forKey: .secret)
        }
    }

    struct DeliveryJSON: Encodable {
        var delivery: WebhookDelivery

        enum CodingKeys: String, CodingKey {
            case id, event_id, event_type, state, attempts, next_attempt_at, last_attempt_at, response_status,
                 last_error, duration_ms, created_at
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            let d = delivery
            try c.encode(d.id, forKey: .id)
            try c.encode(String(d.eventID), forKey: .event_id)
            try c.encode(d.eventType, forKey: .event_type)
            try c.encode(d.state.rawValue, forKey: .state)
            try c.encode(d.attempts, forKey: .attempts)
            try c.encode(d.nextAttemptAt, forKey: .next_attempt_at)
            try c.encode(d.lastAttemptAt, forKey: .last_attempt_at)
            try c.encode(d.responseStatus, forKey: .response_status)
            try c.encode(d.lastError, forKey: .last_error)
            try c.encode(d.durationMs, forKey: .duration_ms)
            try c.encode(d.createdAt, forKey: .created_at)
        }
    }

    struct TestJSON: Encodable, ResponseEncodable {
        var event_id: String
    }

    struct CreateBody: Decodable {
        var url: String
        var events: [String]
        var description: String?
    }

    struct UpdateBody: Decodable {
        var url: String?
        var events: [String]?
        var description: String?
        var enabled: Bool?
    }

    let store: WebhookStore

    public init(store: WebhookStore) {
        self.store = store
    }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let store = self.store
        group.post("webhooks") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let body = try await APIInput.decode(CreateBody.self, from: request)
            let (endpoint, secret) = try await APIInput.store {
                try await store.create(tenant: tenant, url: body.url, description: body.description ?? "",
                                       events: body.events)
            }
            return try APIInput.created(EndpointJSON(endpoint: endpoint, secret: secret),
                                        location: "/v1/webhooks/\(endpoint.id)", request: request, context: context)
        }
        group.get("webhooks") { request, context -> Response in
            let tenant = try context.databaseTenant()
            return try await APIInput.page(request, max: Self.maxPageSize, cursor: { (e: WebhookEndpoint) in e.id },
                                           item: { EndpointJSON(endpoint: $0) }) { after, limit in
                try await store.endpoints(tenant: tenant, after: after, limit: limit)
            }.response(from: request, context: context)
        }
        group.get("webhooks/:id") { _, context -> EndpointJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "webhook endpoint")
            guard let endpoint = try await store.endpoint(tenant: tenant, id: id) else {
                throw Problem.notFound("webhook endpoint \(id)")
            }
            return EndpointJSON(endpoint: endpoint)
        }
        group.patch("webhooks/:id") { request, context -> EndpointJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "webhook endpoint")
            let body = try await APIInput.decode(UpdateBody.self, from: request)
            let update = WebhookStore.Update(url: body.url, description: body.description, events: body.events,
                                             enabled: body.enabled)
            guard let endpoint = try await APIInput.store({ try await store.update(tenant: tenant, id: id, update) })
            else { throw Problem.notFound("webhook endpoint \(id)") }
            return EndpointJSON(endpoint: endpoint)
        }
        group.delete("webhooks/:id") { _, context -> HTTPResponse.Status in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "webhook endpoint")
            guard try await store.delete(tenant: tenant, id: id) else { throw Problem.notFound("webhook endpoint \(id)") }
            return .noContent
        }
        group.post("webhooks/:id/test") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "webhook endpoint")
            guard let event = try await APIInput.store({ try await store.sendTest(tenant: tenant, id: id) }) else {
                throw Problem.notFound("webhook endpoint \(id)")
            }
            return try APIInput.accepted(TestJSON(event_id: String(event)), request: request, context: context)
        }
        group.get("webhooks/:id/deliveries") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "webhook endpoint")
            // Newest first: `after` is the `next` cursor, the deliveries older than it.
            return try await APIInput.page(request, max: Self.maxPageSize, notFound: "webhook endpoint \(id)",
                                           cursor: { (d: WebhookDelivery) in d.id },
                                           item: { DeliveryJSON(delivery: $0) }) { after, limit in
                try await store.deliveries(tenant: tenant, endpoint: id, before: after, limit: limit)
            }.response(from: request, context: context)
        }
    }
}
