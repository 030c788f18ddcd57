import CampaignStore
import Foundation
import Hummingbird
import NIOCore
import Rendering

/// Open and click tracking, outside `/v1` (the signed token is the credential, see
/// ``TrackingToken``):
/// - `GET /t/o/{token}`: a 1×1 transparent GIF, `Cache-Control: no-store`; records an open.
/// - `GET /t/c/{token}`: `302 Found` to the link's target as the message had it; records
///   a click. The target comes from the signed token, never from the request, so Herald
///   is no open redirect: an unsigned, altered or foreign-key token is a 404.
/// Recording never stands between a reader and the link: with the database down the
/// redirect (or image) is answered all the same and the event is lost (logged).
/// Nothing about the reader is kept (no IP address, no user agent).
///
/// And under `/v1` (API key): `GET /v1/campaigns/{id}/links` → clicks per link.
public struct TrackingV1: Sendable {
    let stores: HTTPStores
    let keys: [[UInt8]]

    public init(stores: HTTPStores, keys: [[UInt8]]) {
        self.stores = stores
        self.keys = keys
    }

    /// GIF89a, 1×1, one transparent pixel.
    static let pixel: [UInt8] = [
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xFF, 0xFF, 0xFF, 0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B,
    ]

    public func add(to router: Router<HeraldRequestContext>) {
        let tracking = stores.tracking
        let keys = self.keys
        let t = router.group("t")
        t.get("o/:token") { _, context -> Response in
            guard let token = context.parameters.get("token").flatMap({ TrackingToken.verify($0, kind: .open, keys: keys) }),
                  let tenant = Int64(token.tenant)
            else { throw Problem.notFound("tracking link") }
            await Self.record(tracking, .open, token, tenant: tenant, context)
            var headers = HTTPFields()
            headers[.contentType] = "image/gif"
            headers[.cacheControl] = "no-store, private"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: Self.pixel)))
        }
        t.get("c/:token") { _, context -> Response in
            guard let token = context.parameters.get("token").flatMap({ TrackingToken.verify($0, kind: .click, keys: keys) }),
                  let tenant = Int64(token.tenant), !token.url.isEmpty
            else { throw Problem.notFound("tracking link") }
            await Self.record(tracking, .click, token, tenant: tenant, context)
            var headers = HTTPFields()
            headers[.location] = token.url
            headers[.cacheControl] = "no-store, private"
            return Response(status: .found, headers: headers)
        }
    }

    static func record(_ store: TrackingStore, _ kind: TrackingStore.Kind, _ token: TrackingToken, tenant: Int64,
                       _ context: HeraldRequestContext) async {
        do {
            try await store.record(kind, tenant: TenantID(tenant), campaign: token.campaign,
                                   subscriber: token.subscriber, url: kind == .click ? token.url : nil)
        } catch {
            context.logger.warning("tracking event not recorded", metadata: [
                "kind": "\(kind.rawValue)", "campaign": "\(token.campaign)", "error": "\(error)"])
        }
    }

    struct LinkJSON: Encodable {
        var url: String
        var clicks: Int64
        var unique_clicks: Int64
    }

    struct LinksJSON: Encodable, ResponseEncodable {
        var data: [LinkJSON]
    }

    /// `GET /v1/campaigns/{id}/links`.
    public func addAPI(to group: RouterGroup<HeraldRequestContext>) {
        let tracking = stores.tracking
        let campaigns = stores.campaigns
        group.get("campaigns/:id/links") { _, context -> LinksJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            guard try await campaigns.campaign(tenant: tenant, id: id) != nil else { throw Problem.notFound("campaign \(id)") }
            let links = try await tracking.links(tenant: tenant, campaign: id)
            return LinksJSON(data: links.map { LinkJSON(url: $0.url, clicks: $0.clicks, unique_clicks: $0.uniqueClicks) })
        }
    }
}
