import CampaignStore
import Foundation
import Hummingbird

/// Bounces and complaints that arrived after delivery (``BounceStore``), in the order
/// they arrived: `GET /v1/bounces?campaign_id=&email=&type=&after=&limit=` →
/// `{"data": [...], "next"}`. An event is `{"id", "type" (bounce | complaint),
/// "campaign_id", "subscriber_id", "email", "category", "hard", "status",
/// "diagnostic", "reporter", "suppressed", "received_at"}`; `suppressed` tells whether
/// this event suppressed the address (a hard bounce, a complaint, or the soft bounce
/// that reached `[bounce] soft_bounce_limit`).
public struct BouncesV1: Sendable {
    public static let maxPageSize = 1000

    struct EventJSON: Encodable, ResponseEncodable {
        var event: BounceEvent

        enum CodingKeys: String, CodingKey {
            case id, type, campaign_id, subscriber_id, email, category, hard, status, diagnostic, reporter, suppressed,
                 received_at
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(event.id, forKey: .id)
            try c.encode(event.type.rawValue, forKey: .type)
            try c.encode(event.campaignID, forKey: .campaign_id)
            try c.encode(event.subscriberID, forKey: .subscriber_id)
            try c.encode(event.email, forKey: .email)
            try c.encode(event.category, forKey: .category)
            try c.encode(event.hard, forKey: .hard)
            try c.encode(event.status, forKey: .status)
            try c.encode(event.diagnostic, forKey: .diagnostic)
            try c.encode(event.reporter, forKey: .reporter)
            try c.encode(event.suppressed, forKey: .suppressed)
            try c.encode(event.receivedAt, forKey: .received_at)
        }
    }

    let store: BounceStore

    public init(stores: HTTPStores) { store = stores.bounces }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let store = self.store
        group.get("bounces") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let query = request.uri.queryParameters
            var campaign: Int64?
            if let text = query.get("campaign_id"), !text.isEmpty {
                guard let id = Int64(text), id > 0 else {
                    throw Problem.badRequest("campaign_id: give a campaign id, a positive integer (got \"\(text)\")")
                }
                campaign = id
            }
            var type: BounceEventType?
            if let text = query.get("type"), !text.isEmpty {
                guard let t = BounceEventType(rawValue: text) else {
                    throw Problem.badRequest("type: bounce or complaint (got \"\(text)\")")
                }
                type = t
            }
            let email = query.get("email").flatMap { $0.isEmpty ? nil : $0 }
            return try await APIInput.page(request, max: Self.maxPageSize, cursor: { (e: BounceEvent) in e.id },
                                           item: { EventJSON(event: $0) }) { after, limit in
                try await store.events(tenant: tenant, campaignID: campaign, email: email, type: type,
                                       after: after, limit: limit)
            }.response(from: request, context: context)
        }
    }
}
