import CampaignStore
import Foundation
import Hummingbird
import Rendering

/// Subscribers:
/// - `POST /v1/lists/{id}/subscribers {"email", "name"?, "first_name"?, "last_name"?,
///   "attributes"?, "status"?}`: adds the address to the list, creating or updating the
///   tenant's subscriber by email (idempotent): 201 when the address was new to the
///   tenant, 200 when it existed (fields given replace the stored ones, attributes are
///   merged key by key, an absent `status` keeps the stored one);
/// - `GET /v1/lists/{id}/subscribers?email=` → that subscriber (with its `status`), 404
///   when the address is not on the list;
/// - `GET /v1/lists/{id}/subscribers?status=&after=&limit=` → `{"data": [...], "next"}`
///   in id order (keyset pagination: pass `next` as `after`; null on the last page);
/// - `GET /v1/subscribers?status=&after=&limit=` (and `?email=`): the same over all the
///   tenant's subscribers;
/// - `GET /v1/subscribers/{id}`; `DELETE /v1/subscribers/{id}` → 204 (off every list);
/// - `DELETE /v1/lists/{id}/subscribers/{sid}` → 204 (off this list only).
///
/// A subscriber is `{"id", "email", "name", "first_name", "last_name", "attributes",
/// "status", "created_at", "updated_at"}`; emails are stored lower-cased.
public struct SubscribersV1: Sendable {
    public static let maxPageSize = 1000

    struct SubscriberJSON: Encodable, ResponseEncodable {
        var subscriber: Subscriber

        enum CodingKeys: String, CodingKey {
            case id, email, name, first_name, last_name, attributes, status, created_at, updated_at
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(subscriber.id, forKey: .id)
            try c.encode(subscriber.email, forKey: .email)
            try c.encode(subscriber.name, forKey: .name)
            try c.encode(subscriber.firstName, forKey: .first_name)
            try c.encode(subscriber.lastName, forKey: .last_name)
            try c.encode(subscriber.attributes, forKey: .attributes)
            try c.encode(subscriber.status.rawValue, forKey: .status)
            try c.encode(subscriber.createdAt, forKey: .created_at)
            try c.encode(subscriber.updatedAt, forKey: .updated_at)
        }
    }

    struct Body: Decodable {
        var email: String
        var name: String?
        var first_name: String?
        var last_name: String?
        var attributes: [String: TemplateValue]?
        var status: String?
    }

    let stores: HTTPStores

    public init(stores: HTTPStores) { self.stores = stores }

    static func status(_ text: String?, field: String) throws -> SubscriberStatus? {
        guard let text else { return nil }
        guard let status = SubscriberStatus(rawValue: text) else {
            let known = SubscriberStatus.allCases.map(\.rawValue).joined(separator: ", ")
            throw Problem.unprocessable("\(field): unknown status \"\(text)\"; use one of \(known)")
        }
        return status
    }

    static func email(_ text: String, field: String) throws -> String {
        switch SubscriberAddress.normalize(text) {
        case .success(let email): return email
        case .failure(let error): throw Problem.unprocessable("\(field): \"\(text)\" is not a valid address (\(error.message))")
        }
    }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let subscribers = stores.subscribers
        group.post("lists/:id/subscribers") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let listID = try APIInput.id(context, "id", what: "list")
            let body = try await APIInput.decode(Body.self, from: request)
            _ = try Self.email(body.email, field: "email")
            let input = SubscriberInput(email: body.email, name: body.name, firstName: body.first_name,
                                        lastName: body.last_name, attributes: body.attributes,
                                        status: try Self.status(body.status, field: "status"))
            guard let (subscriber, created) = try await APIInput.store({
                try await subscribers.upsert(tenant: tenant, listID: listID, input)
            }) else { throw Problem.notFound("list \(listID)") }
            var response = try SubscriberJSON(subscriber: subscriber).response(from: request, context: context)
            response.status = created ? .created : .ok
            if created { response.headers[.location] = "/v1/subscribers/\(subscriber.id)" }
            return response
        }
        group.get("lists/:id/subscribers") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let listID = try APIInput.id(context, "id", what: "list")
            return try await self.find(request, context, tenant: tenant, listID: listID)
        }
        group.get("subscribers") { request, context -> Response in
            let tenant = try context.databaseTenant()
            return try await self.find(request, context, tenant: tenant, listID: nil)
        }
        group.get("subscribers/:id") { _, context -> SubscriberJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "subscriber")
            guard let subscriber = try await subscribers.subscriber(tenant: tenant, id: id) else {
                throw Problem.notFound("subscriber \(id)")
            }
            return SubscriberJSON(subscriber: subscriber)
        }
        group.delete("subscribers/:id") { _, context -> HTTPResponse.Status in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "subscriber")
            guard try await subscribers.delete(tenant: tenant, id: id) else { throw Problem.notFound("subscriber \(id)") }
            return .noContent
        }
        group.delete("lists/:id/subscribers/:sid") { _, context -> HTTPResponse.Status in
            let tenant = try context.databaseTenant()
            let listID = try APIInput.id(context, "id", what: "list")
            let id = try APIInput.id(context, "sid", what: "subscriber")
            guard try await subscribers.remove(tenant: tenant, listID: listID, subscriberID: id) else {
                throw Problem.notFound("subscriber \(id) on list \(listID)")
            }
            return .noContent
        }
    }

    /// The longest `?q=` (a substring of email or names).
    static let maxSearchLength = 200

    /// `?email=` → one subscriber; otherwise a page (`?status=`, `?q=`: a part of the
    /// email or a name, case-insensitive).
    func find(_ request: Request, _ context: HeraldRequestContext, tenant: TenantID, listID: Int64?) async throws
        -> Response
    {
        let query = request.uri.queryParameters
        if let email = query.get("email") {
            _ = try Self.email(email, field: "email")
            if let listID, try await stores.lists.list(tenant: tenant, id: listID) == nil {
                throw Problem.notFound("list \(listID)")
            }
            guard let subscriber = try await stores.subscribers.subscriber(tenant: tenant, email: email, listID: listID)
            else {
                throw Problem.notFound(listID.map { "\(email) on list \($0)" } ?? email)
            }
            return try SubscriberJSON(subscriber: subscriber).response(from: request, context: context)
        }
        let status = try Self.status(query.get("status").flatMap { $0.isEmpty ? nil : $0 }, field: "status")
        let search = query.get("q").flatMap { $0.isEmpty ? nil : String($0) }
        if let search, search.count > Self.maxSearchLength {
            throw Problem.badRequest("q: at most \(Self.maxSearchLength) characters")
        }
        let limit = try APIInput.limit(request, max: Self.maxPageSize)
        let after = try APIInput.after(request)
        guard let page = try await stores.subscribers.subscribers(tenant: tenant, listID: listID, status: status,
                                                                  search: search, after: after, limit: limit)
        else { throw Problem.notFound("list \(listID ?? 0)") }
        return try Page<SubscriberJSON>(data: page.subscribers.map { SubscriberJSON(subscriber: $0) }, next: page.nextCursor)
            .response(from: request, context: context)
    }
}
