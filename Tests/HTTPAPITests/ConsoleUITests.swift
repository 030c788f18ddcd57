import Foundation
import Hummingbird
import HummingbirdTesting
import Spool
import Testing

import Campaigns
import CampaignStore

@testable import HTTPAPI

/// The web console's files under `/ui/` (served from the binary, with their security
/// headers), checks on the files themselves (no inline script or style, no HTML parsing
/// of data), and the reason it needs no CSRF token: `/v1` never authenticates by cookie.
@Suite struct ConsoleUITests {
    static let key = "hk_console-test-key"

    static func withApp(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let dir = NSTemporaryDirectory() + "herald-console-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try Spool(path: dir)
        let router = HTTPAPI.makeRouter(
            spool: spool, writer: SpoolWriter(spool: spool),
            verifier: StaticAPIKeys([(tenant: "tenant-a", sha256: APIKey.hash(key))]), hostname: "herald.test")
        try await Application(router: router).test(.router) { client in try await body(client) }
    }

    static func expectSecurityHeaders(_ r: TestResponse, sourceLocation: SourceLocation = #_sourceLocation) {
        let csp = r.headers[.contentSecurityPolicy] ?? ""
        let directives = Set(csp.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) })
        #expect(directives.contains("default-src 'self'"), "CSP: \(csp)", sourceLocation: sourceLocation)
        #expect(directives.contains("script-src 'self'"), "CSP: \(csp)", sourceLocation: sourceLocation)
        #expect(directives.contains("style-src 'self'"), "CSP: \(csp)", sourceLocation: sourceLocation)
        #expect(directives.contains("frame-ancestors 'none'"), "CSP: \(csp)", sourceLocation: sourceLocation)
        #expect(!csp.contains("unsafe"), "CSP: \(csp)", sourceLocation: sourceLocation)
        #expect(r.headers[.xContentTypeOptions] == "nosniff", sourceLocation: sourceLocation)
        #expect(r.headers[ConsoleUI.referrerPolicy] == "no-referrer", sourceLocation: sourceLocation)
        #expect(r.headers[ConsoleUI.frameOptions] == "DENY", sourceLocation: sourceLocation)
    }

    @Test("/ui/ serves the page, its script and style sheet with CSP, nosniff, no-referrer, no framing")
    func servesFiles() async throws {
        try await Self.withApp { client in
            let index = try await client.executeRequest(uri: "/ui/", method: .get, headers: [:], body: nil)
            #expect(index.status == .ok)
            #expect(index.headers[.contentType] == "text/html; charset=utf-8")
            Self.expectSecurityHeaders(index)
            let html = String(buffer: index.body)
            #expect(html.contains("<script src=\"/ui/console.js\" defer></script>"))
            #expect(html.contains("<link rel=\"stylesheet\" href=\"/ui/console.css\">"))

            for (path, type) in [("/ui/console.js", "text/javascript; charset=utf-8"),
                                 ("/ui/console.css", "text/css; charset=utf-8"),
                                 ("/ui/index.html", "text/html; charset=utf-8"), ("/ui/favicon.svg", "image/svg+xml")] {
                let r = try await client.executeRequest(uri: path, method: .get, headers: [:], body: nil)
                #expect(r.status == .ok, "\(path)")
                #expect(r.headers[.contentType] == type, "\(path)")
                #expect(r.body.readableBytes > 100, "\(path)")
                Self.expectSecurityHeaders(r)
            }

            let bare = try await client.executeRequest(uri: "/ui", method: .get, headers: [:], body: nil)
            #expect(bare.status == .movedPermanently)
            #expect(bare.headers[.location] == "/ui/")

            for path in ["/ui/missing.js", "/ui/..%2Fconsole.js", "/ui/console.js/x"] {
                let r = try await client.executeRequest(uri: path, method: .get, headers: [:], body: nil)
                #expect(r.status == .notFound, "\(path): \(r.status)")
            }
            let missing = try await client.executeRequest(uri: "/ui/missing.js", method: .get, headers: [:], body: nil)
            Self.expectSecurityHeaders(missing)
        }
    }

    /// What the CSP would block anyway is kept out of the files too, and data is never
    /// parsed as HTML by the script.
    @Test("the console's files: no inline script, style or handlers; the script never parses data as HTML")
    func filesAreStrict() throws {
        let html = String(decoding: PackageResources.index_html, as: UTF8.self)
        let js = String(decoding: PackageResources.console_js, as: UTF8.self)
        let css = String(decoding: PackageResources.console_css, as: UTF8.self)
        let scripts = html.components(separatedBy: "<script").dropFirst()
        #expect(scripts.count == 1)
        for s in scripts { #expect(s.hasPrefix(" src=\"/ui/"), "an inline or foreign script: <script\(s.prefix(60))") }
        #expect(!html.contains("<style"))
        #expect(html.range(of: #"\sstyle\s*="#, options: .regularExpression) == nil)
        #expect(html.range(of: #"\son[a-z]+\s*="#, options: [.regularExpression, .caseInsensitive]) == nil)
        #expect(!html.contains("http://") && !html.contains("https://"), "nothing from another origin")
        for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                       "localStorage", "document.cookie", "setAttribute(\"style\""] {
            #expect(!js.contains(banned), "console.js uses \(banned)")
        }
        #expect(js.contains("sessionStorage"))
        #expect(!css.contains("@import") && !css.contains("url("), "the style sheet loads nothing else")
    }

    /// The CSRF argument: a cross-site page can make a browser send cookies, never an
    /// Authorization header. No `/v1` route may accept the key any other way.
    @Test("/v1 ignores cookies: a valid key in a cookie (or a query) is a 401; CORS is never granted")
    func noCookieAuthentication() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let client = api.client
                let key = f.keyA
                let cookie = "key=\(key); api_key=\(key); herald=\(key); Authorization=Bearer \(key)"
                let routes: [(HTTPRequest.Method, String)] = [
                    (.post, "/v1/messages"), (.get, "/v1/lists"), (.post, "/v1/lists"), (.post, "/v1/lists/1/import"),
                    (.get, "/v1/campaigns"), (.post, "/v1/campaigns/1/send"), (.post, "/v1/campaigns/1/cancel"),
                    (.delete, "/v1/subscribers/1"), (.get, "/v1/suppressions"), (.get, "/v1/campaigns/1/stats"),
                ]
                for (method, path) in routes {
                    let r = try await client.executeRequest(
                        uri: path, method: method,
                        headers: [.cookie: cookie, .contentType: "application/json", .origin: "https://evil.example"],
                        body: ByteBuffer(string: "{}"))
                    #expect(r.status == .unauthorized, "\(method) \(path) with the key in a cookie: \(r.status)")
                    #expect(r.headers[.accessControlAllowOrigin] == nil)
                    let q = try await client.executeRequest(uri: path + "?api_key=\(key)&key=\(key)", method: method,
                                                            headers: [.contentType: "application/json"],
                                                            body: ByteBuffer(string: "{}"))
                    #expect(q.status == .unauthorized, "\(method) \(path) with the key in the query: \(q.status)")
                }
                // The same key as a bearer header is accepted (so the 401s above are about where the key was).
                let ok = try await client.executeRequest(uri: "/v1/lists", method: .get,
                                                         headers: [.authorization: "Bearer \(key)"], body: nil)
                #expect(ok.status == .ok, "\(ok.status)")
                // A preflight from another origin is not granted.
                let preflight = try await client.executeRequest(
                    uri: "/v1/campaigns", method: .options,
                    headers: [.origin: "https://evil.example", .accessControlRequestMethod: "POST",
                              .accessControlRequestHeaders: "authorization"], body: nil)
                #expect(preflight.headers[.accessControlAllowOrigin] == nil)
                #expect(preflight.headers[.accessControlAllowHeaders] == nil)
            }
        }
    }
}
