@testable import Delivery
import Testing

@Suite struct DomainPatternTests {
    @Test func exactMatchesOnlyItselfCaseInsensitively() throws {
        let p = try #require(DomainPattern("Example.COM"))
        #expect(p.text == "example.com")
        #expect(p.matches("example.com"))
        #expect(p.matches("EXAMPLE.com"))
        #expect(!p.matches("mail.example.com"))
        #expect(!p.matches("badexample.com"))
        #expect(!p.matches("example.com.evil.test"))
        #expect(!p.matches("example.co"))
        #expect(!p.matches(""))
    }

    @Test func wildcardMatchesTheDomainAndItsSubdomains() throws {
        let p = try #require(DomainPattern("*.example.com"))
        #expect(p.matches("example.com"))
        #expect(p.matches("a.example.com"))
        #expect(p.matches("a.b.c.EXAMPLE.com"))
        #expect(!p.matches("badexample.com"), "a label boundary is required")
        #expect(!p.matches("example.com.evil.test"))
        #expect(!p.matches("com"))
    }

    @Test func starMatchesEverything() throws {
        let p = try #require(DomainPattern("*"))
        for d in ["a.test", "example.com", "x", "xn--bcher-kva.example"] { #expect(p.matches(d)) }
    }

    @Test("malformed patterns are refused", arguments: ["", "*x.example.com", "a.*.example.com", "example.*", "**",
                                                        "*.*.example.com", "ex*ample.com"])
    func refused(_ text: String) {
        #expect(DomainPattern(text) == nil, "\(text.debugDescription)")
    }

    @Test func specificityOrdersExactThenLongerWildcardsThenStar() throws {
        let ordered = ["a.b.example.com", "x.io", "*.b.example.com", "*.example.com", "*.com", "*"]
            .map { DomainPattern($0)! }
        for (more, less) in zip(ordered, ordered.dropFirst()) {
            #expect(more.specificity > less.specificity || (more.text == "a.b.example.com" && less.text == "x.io"),
                    "\(more) should be more specific than \(less)")
        }
        // Any exact name beats any wildcard, however long.
        #expect(DomainPattern("x.io")!.specificity > DomainPattern("*.a.very.long.subdomain.of.example.com")!.specificity)
    }
}

@Suite struct RouteSelectionTests {
    func route(_ pattern: String, _ host: String?) -> Route {
        Route(pattern: DomainPattern(pattern)!, host: host, port: 2600, tls: .off)
    }

    @Test func mostSpecificRouteWins() {
        // Deliberately listed least specific first and in mixed order: order must not matter.
        var config = DeliveryConfiguration(heloName: "mx.test")
        config.routes = [
            route("*", "smarthost"),
            route("*.example.com", "wild"),
            route("exact.example.com", "exact"),
            route("*.deep.example.com", "deep"),
        ]
        #expect(config.route(for: "other.org")?.host == "smarthost")
        #expect(config.route(for: "example.com")?.host == "wild")
        #expect(config.route(for: "mail.example.com")?.host == "wild")
        #expect(config.route(for: "EXACT.example.com")?.host == "exact")
        #expect(config.route(for: "x.exact.example.com")?.host == "wild", "exact does not cover subdomains")
        #expect(config.route(for: "deep.example.com")?.host == "deep")
        #expect(config.route(for: "a.b.deep.example.com")?.host == "deep")
        config.routes.reverse()
        #expect(config.route(for: "a.b.deep.example.com")?.host == "deep")
        #expect(config.route(for: "exact.example.com")?.host == "exact")
        #expect(config.route(for: "other.org")?.host == "smarthost")
    }

    @Test func noRouteMeansMX() {
        var config = DeliveryConfiguration(heloName: "mx.test")
        #expect(config.route(for: "example.com") == nil)
        config.routes = [route("*.example.com", "sink")]
        #expect(config.route(for: "example.org") == nil)
        // A route without a host sends its domains to their MX (overriding a catch-all).
        config.routes.append(route("*", "smarthost"))
        config.routes.append(route("direct.test", nil))
        #expect(config.route(for: "direct.test").map { $0.host == nil } == true)
        #expect(config.route(for: "indirect.test")?.host == "smarthost")
    }

    @Test func routeKeepsItsPolicyAndCredentials() {
        var config = DeliveryConfiguration(heloName: "mx.test")
        config.routes = [Route(pattern: DomainPattern("*.relay.test")!, host: "127.0.0.1", port: 2525, tls: .required,
                               username: "u", password: "p", authWithoutTLS: false)]
        let r = config.route(for: "x.relay.test")
        #expect(r?.tls == .required)
        #expect(r?.port == 2525)
        #expect(r?.username == "u")
        #expect(r?.password == "p")
    }
}
