import DNS
import Foundation
import HeraldTestSupport
import Logging
import Testing

/// `DNSError.description` is what a postmaster reads in the delivery log, a bounce and a
/// campaign's failures: the name, then the cause in a few words.
@Suite("DNS error texts")
struct DNSErrorTextTests {
    @Test func shortAndHuman() {
        #expect(DNSError.noSuchDomain("example.invalid").description == "example.invalid: no such domain")
        #expect(DNSError.noSuchDomain("a..b", reason: "not a valid domain name").description
                == "a..b: not a valid domain name")
        #expect(DNSError.noAddress("mx.example.invalid", reason: "NXDOMAIN").description == "mx.example.invalid: no such host")
        #expect(DNSError.noAddress("mx.example.test").description == "mx.example.test: host has no A or AAAA records")
        #expect(DNSError.nullMX("null.example").description == "null.example: domain accepts no mail (null MX)")
        #expect(DNSError.noMailExchanger("txt.example").description
                == "txt.example: no mail exchanger (no MX and no A/AAAA records)")
        #expect(DNSError.temporary("timed out", name: "slow.example").description
                == "slow.example: temporary DNS failure (timed out)")
    }

    @Test(.enabled(if: Dnsmasq.isAvailable), .timeLimit(.minutes(1)))
    func unresolvableDomainThroughCAres() async throws {
        let dns = try Dnsmasq([.mx("dangling.test", host: "gone.test", preference: 10)], localDomains: ["test", "invalid"])
        defer { dns.stop() }
        var logger = Logger(label: "herald.dns.test")
        logger.logLevel = .critical
        let resolver = try CAresResolver(servers: [dns.server], timeout: .seconds(3), logger: logger)
        defer { resolver.shutdown() }
        let domain = await #expect(throws: DNSError.self) { try await resolver.mx(for: "example.invalid") }
        #expect(domain?.description == "example.invalid: no such domain")
        let host = await #expect(throws: DNSError.self) { try await resolver.addresses(for: "gone.test") }
        #expect(host?.description == "gone.test: no such host", "\(String(describing: host))")
    }
}
