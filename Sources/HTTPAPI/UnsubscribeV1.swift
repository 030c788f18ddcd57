import CampaignStore
import Foundation
import Hummingbird
import NIOCore
import Rendering

/// The unsubscribe endpoints, outside `/v1` (no API key: the signed token is the
/// credential, see ``UnsubscribeToken``):
/// - `GET /u/{token}`: a confirmation page whose form POSTs back to the same URL. It
///   changes nothing (link scanners and prefetchers fetch GET links).
/// - `POST /u/{token}`: the RFC 8058 one-click endpoint (body
///   `List-Unsubscribe=One-Click`, form-encoded) and the page's form (any or no body).
///   In one transaction the subscriber becomes `unsubscribed` and the address is
///   suppressed for the tenant (``SuppressionStore/unsubscribe(tenant:subscriberID:campaignID:)``).
///   Idempotent: a repeat is a 200 too.
/// A token that does not verify (garbled, edited, forged, another key) is a 404 page and
/// changes nothing. Pages are self-contained HTML: no scripts, images or other
/// resources, nothing that tracks; every value shown is HTML-escaped.
public struct UnsubscribeV1: Sendable {
    let stores: HTTPStores
    let suppressions: SuppressionStore
    /// The current key first; older keys keep old links working after a rotation.
    let keys: [[UInt8]]

    /// - Parameter keys: the unsubscribe keys (at least ``UnsubscribeToken/minimumKeyLength``
    ///   bytes each; shorter ones never verify anything).
    public init(stores: HTTPStores, keys: [[UInt8]]) {
        self.stores = stores
        self.suppressions = stores.suppressions
        self.keys = keys
    }

    public init(stores: HTTPStores, key: [UInt8]) {
        self.init(stores: stores, keys: [key])
    }

    /// Largest POST body read (RFC 8058's is 26 bytes; the page's form sends less).
    static let maxBody = 16 * 1024

    public func add(to router: Router<HeraldRequestContext>) {
        let u = router.group("u")
        u.get(":token") { request, context in
            try await page(request, context)
        }
        u.post(":token") { request, context in
            try await unsubscribe(request, context)
        }
    }

    /// The fields of a genuine token whose ids can name a subscriber, or nil.
    struct Target {
        var tenant: TenantID
        var subscriber: Int64
        var list: Int64?
        var campaign: Int64?
    }

    func target(_ context: HeraldRequestContext) -> Target? {
        guard let text = context.parameters.get("token"),
              let token = UnsubscribeToken.verify(text, keys: keys),
              let tenant = Int64(token.tenant), tenant > 0,
              let subscriber = Int64(token.subscriber), subscriber > 0
        else { return nil }
        return Target(tenant: TenantID(tenant), subscriber: subscriber,
                      list: Int64(token.list).flatMap { $0 > 0 ? $0 : nil },
                      campaign: token.campaign.flatMap { Int64($0) }.flatMap { $0 > 0 ? $0 : nil })
    }

    func page(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        guard let target = target(context) else { return Self.invalidLink() }
        do {
            guard let subscriber = try await stores.subscribers.subscriber(tenant: target.tenant, id: target.subscriber)
            else { return Self.gone() }
            var listName: String?
            if let list = target.list { listName = try await stores.lists.list(tenant: target.tenant, id: list)?.name }
            if subscriber.status != .active {
                return Self.html(.ok, title: "You are unsubscribed", body: """
                    <h1>You are unsubscribed</h1>
                    <p><strong>\(Self.escape(subscriber.email))</strong> no longer receives these mailings.</p>
                    """)
            }
            let from = listName.map { " from the list <strong>\(Self.escape($0))</strong>" } ?? ""
            // No action attribute: the form posts to this page's own URL, whatever
            // prefix a proxy in front of Herald adds.
            return Self.html(.ok, title: "Unsubscribe", body: """
                <h1>Unsubscribe</h1>
                <p>Stop sending mail to <strong>\(Self.escape(subscriber.email))</strong>\(from)?</p>
                <form method="post">
                <button type="submit" name="List-Unsubscribe" value="One-Click">Unsubscribe</button>
                </form>
                """)
        } catch {
            return Self.unavailable(error, context)
        }
    }

    func unsubscribe(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        // The body is read (and ignored): one-click senders POST
        // `List-Unsubscribe=One-Click`, the page's form the same, others nothing.
        do {
            _ = try await request.body.collect(upTo: Self.maxBody)
        } catch is NIOTooManyBytesError {
            throw Problem(.contentTooLarge, "An unsubscribe request carries at most \(Self.maxBody) bytes "
                + "(RFC 8058: List-Unsubscribe=One-Click).")
        }
        guard let target = target(context) else { return Self.invalidLink() }
        let outcome: UnsubscribeOutcome
        do {
            outcome = try await suppressions.unsubscribe(tenant: target.tenant, subscriberID: target.subscriber,
                                                         campaignID: target.campaign)
        } catch {
            return Self.unavailable(error, context)
        }
        if outcome.changed {
            context.logger.info("unsubscribed", metadata: [
                "tenant": "\(target.tenant)", "subscriber": "\(target.subscriber)",
                "campaign": "\(target.campaign.map(String.init) ?? "-")",
            ])
        }
        guard let email = outcome.email else { return Self.gone() }
        return Self.html(.ok, title: "You are unsubscribed", body: """
            <h1>You are unsubscribed</h1>
            <p><strong>\(Self.escape(email))</strong> will receive no more of these mailings.</p>
            """)
    }

    // MARK: - Pages

    static func invalidLink() -> Response {
        html(.notFound, title: "Link not valid", body: """
            <h1>This unsubscribe link is not valid</h1>
            <p>It may have been cut short or changed. Open the link from the message again, \
            or copy the whole address into the browser.</p>
            """)
    }

    /// A genuine token whose subscriber no longer exists: nothing is left to mail.
    static func gone() -> Response {
        html(.ok, title: "You are unsubscribed", body: """
            <h1>You are unsubscribed</h1>
            <p>This address is no longer on the mailing list.</p>
            """)
    }

    static func unavailable(_ error: any Error, _ context: HeraldRequestContext) -> Response {
        context.logger.error("unsubscribe failed: \(error)")
        var response = html(.serviceUnavailable, title: "Try again later", body: """
            <h1>Please try again in a few minutes</h1>
            <p>Your request could not be handled just now; nothing was changed.</p>
            """)
        response.headers[.retryAfter] = "60"
        return response
    }

    static func html(_ status: HTTPResponse.Status, title: String, body: String) -> Response {
        let page = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="robots" content="noindex, nofollow">
            <title>\(Self.escape(title))</title>
            <style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;\
            line-height:1.5;color:#222}button{font-size:1rem;padding:.5rem 1.25rem;cursor:pointer}</style>
            </head>
            <body>
            \(body)
            </body>
            </html>

            """
        var headers: HTTPFields = [:]
        headers[.contentType] = "text/html; charset=utf-8"
        // The token is in the URL: keep it out of caches, referrers and search engines;
        // allow no resources at all, and no framing (click-jacking).
        headers[.cacheControl] = "no-store"
        headers[.init("Referrer-Policy")!] = "no-referrer"
        headers[.init("X-Robots-Tag")!] = "noindex, nofollow"
        headers[.init("X-Content-Type-Options")!] = "nosniff"
        headers[.init("Content-Security-Policy")!] =
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: page)))
    }
}

extension UnsubscribeV1 {
    /// HTML text escaping for the pages (text and attribute values).
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
