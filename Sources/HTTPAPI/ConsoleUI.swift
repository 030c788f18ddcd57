import Hummingbird
import NIOCore

/// The web console: a small single-page client of the `/v1` API, served under `/ui/` by
/// the same listener.
///
/// Its files (`Console/index.html`, `console.css`, `console.js`, `favicon.svg`) are compiled into
/// the binary (SwiftPM's `embedInCode` resource rule, ``PackageResources``), so a release
/// binary copied anywhere serves them; there is no front-end build step and nothing is
/// fetched from elsewhere at run time.
///
/// Security: the pages hold no secret and no data. The API key lives in the browser tab's
/// `sessionStorage` and reaches the API only as `Authorization: Bearer` on requests the
/// console's own script makes; `/v1` reads no cookie (``TenantAuthMiddleware``), so a
/// cross-site page cannot make a browser send an authenticated request, which is why the
/// state-changing routes need no CSRF token. Every response here carries a strict
/// Content-Security-Policy (only this origin's script and style files; no inline script,
/// inline style, `eval`, plug-in or framing), `nosniff`, `no-referrer` and no framing.
public struct ConsoleUI: Sendable {
    struct Asset: Sendable {
        var contentType: String
        var body: ByteBuffer
    }

    static let assets: [String: Asset] = [
        "index.html": Asset(contentType: "text/html; charset=utf-8", body: ByteBuffer(bytes: PackageResources.index_html)),
        "console.css": Asset(contentType: "text/css; charset=utf-8", body: ByteBuffer(bytes: PackageResources.console_css)),
        "console.js": Asset(contentType: "text/javascript; charset=utf-8",
                            body: ByteBuffer(bytes: PackageResources.console_js)),
        "favicon.svg": Asset(contentType: "image/svg+xml", body: ByteBuffer(bytes: PackageResources.favicon_svg)),
    ]

    /// `connect-src 'self'`: the script talks to this origin's API only.
    static let contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        + "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// Header names HTTPTypes does not predefine.
    static let referrerPolicy = HTTPFields.Element.Name("Referrer-Policy")!
    static let frameOptions = HTTPFields.Element.Name("X-Frame-Options")!
    static let openerPolicy = HTTPFields.Element.Name("Cross-Origin-Opener-Policy")!

    static let securityHeaders: HTTPFields = {
        var h = HTTPFields()
        h[.contentSecurityPolicy] = contentSecurityPolicy
        h[.xContentTypeOptions] = "nosniff"
        h[referrerPolicy] = "no-referrer"
        h[frameOptions] = "DENY"
        h[openerPolicy] = "same-origin"
        h[.crossOriginResourcePolicy] = "same-origin"
        // Small files, revalidated each time: a new Herald's console is seen at once.
        h[.cacheControl] = "no-cache"
        return h
    }()

    public init() {}

    static func response(_ asset: Asset) -> Response {
        var headers = securityHeaders
        headers[.contentType] = asset.contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
    }

    public func add(to router: Router<HeraldRequestContext>) {
        // The router matches `/ui` and `/ui/` alike; the page's relative links want the slash.
        router.get("ui") { request, _ -> Response in
            guard request.uri.path.hasSuffix("/") else {
                var headers = Self.securityHeaders
                headers[.location] = "/ui/"
                return Response(status: .movedPermanently, headers: headers)
            }
            return Self.response(Self.assets["index.html"]!)
        }
        router.get("ui/:file") { _, context -> Response in
            guard let name = context.parameters.get("file"), let asset = Self.assets[name] else {
                throw Problem(.notFound, "No such console file.", headers: Self.securityHeaders)
            }
            return Self.response(asset)
        }
    }
}
