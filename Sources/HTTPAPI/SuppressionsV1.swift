import CampaignStore
import Foundation
import Hummingbird

/// The tenant's suppression list: addresses Herald never mails again for the tenant
/// (campaigns skip them, `POST /v1/messages` leaves them out).
/// - `GET /v1/suppressions?reason=&after=&limit=` → `{"data": [...], "next"}` in the
///   order they were made; `GET /v1/suppressions?email=` → that one, or 404;
/// - `POST /v1/suppressions {"email", "reason"?}` (`manual` by default; `unsubscribed`,
///   `bounced`, `complained` for lists brought from elsewhere) → 201, or 200 with the
///   suppression that existed (kept as it was);
/// - `DELETE /v1/suppressions/{email}` → 204, 404 when it is not suppressed (the
///   subscriber's own status stays what it is);
/// - `GET /v1/suppressions.csv` → every suppression as CSV
///   (`email,reason,campaign_id,created_at`), streamed page by page.
///
/// A suppression is `{"id", "email", "reason", "campaign_id", "created_at"}`;
/// `campaign_id` is the campaign whose link, bounce or complaint made it, else null.
public struct SuppressionsV1: Sendable {
    public static let maxPageSize = 1000

    struct SuppressionJSON: Encodable, ResponseEncodable {
        var suppression: Suppression

        enum CodingKeys: String, CodingKey { case id, email, reason, campaign_id, created_at }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(suppression.id, forKey: .id)
            try c.encode(suppression.email, forKey: .email)
            try c.encode(suppression.reason.rawValue, forKey: .reason)
            try c.encode(suppression.campaignID, forKey: .campaign_id)
            try c.encode(suppression.createdAt, forKey: .created_at)
        }
    }

    struct Body: Decodable {
        var email: String
        var reason: String?
    }

    let store: SuppressionStore

    public init(stores: HTTPStores) { store = stores.suppressions }

    static func reason(_ text: String?, field: String) throws -> SuppressionReason? {
        guard let text, !text.isEmpty else { return nil }
        guard let reason = SuppressionReason(rawValue: text) else {
            let known = SuppressionReason.allCases.map(\.rawValue).joined(separator: ", ")
            throw Problem.unprocessable("\(field): unknown reason \"\(text)\"; use one of \(known)")
        }
        return reason
    }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let store = self.store
        group.get("suppressions") { request, context -> Response in
            let tenant = try context.databaseTenant()
            if let email = request.uri.queryParameters.get("email") {
                guard let found = try await store.suppression(tenant: tenant, email: email) else {
                    throw Problem.notFound("a suppression of \(email)")
                }
                return try SuppressionJSON(suppression: found).response(from: request, context: context)
            }
            let reason = try Self.reason(request.uri.queryParameters.get("reason"), field: "reason")
            return try await APIInput.page(request, max: Self.maxPageSize, cursor: { (s: Suppression) in s.id },
                                           item: { SuppressionJSON(suppression: $0) }) { after, limit in
                try await store.suppressions(tenant: tenant, reason: reason, after: after, limit: limit)
            }.response(from: request, context: context)
        }
        group.post("suppressions") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let body = try await APIInput.decode(Body.self, from: request)
            let reason = try Self.reason(body.reason, field: "reason") ?? .manual
            let (suppression, created) = try await APIInput.store {
                try await store.add(tenant: tenant, email: body.email, reason: reason)
            }
            var response = try SuppressionJSON(suppression: suppression).response(from: request, context: context)
            response.status = created ? .created : .ok
            return response
        }
        group.delete("suppressions/:email") { _, context -> HTTPResponse.Status in
            let tenant = try context.databaseTenant()
            let email = try context.parameters.require("email")
            guard try await store.remove(tenant: tenant, email: email) else {
                throw Problem.notFound("a suppression of \(email)")
            }
            return .noContent
        }
        group.get("suppressions.csv") { _, context -> Response in
            let tenant = try context.databaseTenant()
            // The first page before the reply, so that a database error is still a problem.
            let first = try await store.suppressions(tenant: tenant, reason: nil, after: nil, limit: Self.maxPageSize)
            let body = ResponseBody { writer in
                try await writer.write(ByteBuffer(string: "email,reason,campaign_id,created_at\r\n"))
                var page = first
                while !page.isEmpty {
                    try await writer.write(ByteBuffer(string: page.map(Self.csvLine).joined()))
                    guard page.count == Self.maxPageSize, let last = page.last else { break }
                    page = try await store.suppressions(tenant: tenant, reason: nil, after: last.id, limit: Self.maxPageSize)
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8",
                                                   .contentDisposition: "attachment; filename=\"suppressions.csv\""],
                            body: body)
        }
    }

    /// One CSV record (RFC 4180): addresses may hold a comma or a quote in a quoted local part.
    static func csvLine(_ s: Suppression) -> String {
        func field(_ text: String) -> String {
            text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" })
                ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        let created = ISO8601DateFormatter().string(from: s.createdAt)
        return [field(s.email), s.reason.rawValue, s.campaignID.map(String.init) ?? "", created].joined(separator: ",")
            + "\r\n"
    }
}
