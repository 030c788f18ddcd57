import Testing

@testable import DNS

@Suite("ZoneResolver")
struct ZoneResolverTests {
    static let zone = """
        $ORIGIN example.com.
        $TTL 300
        @ 300 MX 10 mx1
        @ 300 IN MX 20 mx2.other.test.
        mx1 300 A 127.0.0.1
            300 AAAA ::1            ; owner omitted: mx1 again
        mx2.other.test. 300 AAAA 2001:DB8::2
        equal 300 MX 10 a.equal
        equal 300 MX 10 b.equal
        implicit 300 A 192.0.2.7
        v6.implicit AAAA 2001:db8::7
        nomail 300 TXT "exists; but no MX or address"
        deep.sub.example.com. A 192.0.2.9
        null.test. 300 MX 0 .
        servfail.test. SERVFAIL
        slow.test. 300 TIMEOUT
        """

    let resolver: ZoneResolver

    init() throws {
        self.resolver = try ZoneResolver(zone: Self.zone)
    }

    @Test func mxSortedByPreference() async throws {
        let hosts = try await self.resolver.mx(for: "example.com")
        #expect(hosts == [MXHost(name: "mx1.example.com", preference: 10), MXHost(name: "mx2.other.test", preference: 20)])
        #expect(try await self.resolver.mx(for: "EXAMPLE.com.") == hosts)
    }

    @Test func equalPreferencesAreShuffled() async throws {
        var firsts: Set<String> = []
        for _ in 0..<64 {
            firsts.insert(try await self.resolver.mx(for: "equal.example.com")[0].name)
        }
        #expect(firsts == ["a.equal.example.com", "b.equal.example.com"])
    }

    @Test func seededResolverIsReproducible() async throws {
        let one = try ZoneResolver(zone: Self.zone, seed: 3)
        let two = try ZoneResolver(zone: Self.zone, seed: 3)
        for _ in 0..<10 {
            #expect(try await one.mx(for: "equal.example.com") == (try await two.mx(for: "equal.example.com")))
        }
    }

    @Test func implicitMX() async throws {
        #expect(try await self.resolver.mx(for: "implicit.example.com") == [MXHost(name: "implicit.example.com", preference: 0)])
        #expect(try await self.resolver.mx(for: "v6.implicit.example.com") == [MXHost(name: "v6.implicit.example.com", preference: 0)])
        // An address literal is its own exchanger.
        #expect(try await self.resolver.mx(for: "[192.0.2.1]") == [MXHost(name: "[192.0.2.1]", preference: 0)])
    }

    @Test func nullMX() async throws {
        let error = await #expect(throws: DNSError.self) { try await self.resolver.mx(for: "null.test") }
        #expect(error?.isNullMX == true)
        #expect(error?.enhancedStatus == "5.1.10")
    }

    @Test func noSuchDomain() async throws {
        let error = await #expect(throws: DNSError.self) { try await self.resolver.mx(for: "nowhere.example.com") }
        #expect(error?.isNoSuchDomain == true)
        #expect(error?.isPermanent == true)
        #expect(error?.enhancedStatus == "5.1.2")
        let invalid = await #expect(throws: DNSError.self) { try await self.resolver.mx(for: "bad..name") }
        #expect(invalid?.isPermanent == true)
    }

    @Test func existsWithoutMailExchanger() async throws {
        let error = await #expect(throws: DNSError.self) { try await self.resolver.mx(for: "nomail.example.com") }
        #expect(error?.isNoMailExchanger == true)
        #expect(error?.isPermanent == true)
        #expect(error?.enhancedStatus == "5.1.2")
        // An empty non-terminal exists too: NODATA, not NXDOMAIN.
        let nonTerminal = await #expect(throws: DNSError.self) { try await self.resolver.mx(for: "sub.example.com") }
        #expect(nonTerminal?.isNoMailExchanger == true)
    }

    @Test func temporaryFailures() async throws {
        for name in ["servfail.test", "below.servfail.test", "slow.test"] {
            let error = await #expect(throws: DNSError.self) { try await self.resolver.mx(for: name) }
            #expect(error?.isPermanent == false)
            #expect(error?.enhancedStatus == "4.4.3")
        }
        let error = await #expect(throws: DNSError.self) { try await self.resolver.addresses(for: "slow.test") }
        #expect(error?.description.contains("timed out") == true)
    }

    @Test func addresses() async throws {
        #expect(try await self.resolver.addresses(for: "mx1.example.com") == ["127.0.0.1", "::1"])
        #expect(try await self.resolver.addresses(for: "mx2.other.test") == ["2001:db8::2"])
        #expect(try await self.resolver.addresses(for: "deep.sub.example.com") == ["192.0.2.9"])
        #expect(try await self.resolver.addresses(for: "192.0.2.1") == ["192.0.2.1"])
        #expect(try await self.resolver.addresses(for: "[IPv6:::1]") == ["::1"])
        #expect(try await self.resolver.addresses(for: "localhost") == ["127.0.0.1", "::1"])
        for name in ["nowhere.example.com", "nomail.example.com"] {
            let error = await #expect(throws: DNSError.self) { try await self.resolver.addresses(for: name) }
            #expect(error?.isNoAddress == true)
            #expect(error?.enhancedStatus == "5.1.2")
        }
        let error = await #expect(throws: DNSError.self) { try await self.resolver.addresses(for: "servfail.test") }
        #expect(error?.isTemporary == true)
    }

    @Test func rejectsBadZones() {
        #expect(throws: ZoneParseError.self) { try ZoneResolver(zone: "example.com. 300 CNAME other.example.") }
        #expect(throws: ZoneParseError.self) { try ZoneResolver(zone: "example.com. 300 A 300.1.1.1") }
        #expect(throws: ZoneParseError.self) { try ZoneResolver(zone: "example.com. 300 MX ten mx") }
        #expect(throws: ZoneParseError.self) { try ZoneResolver(zone: "$ORIGIN example.com") }
        #expect(throws: ZoneParseError.self) { try ZoneResolver(zone: "   300 A 127.0.0.1") }
        let error = #expect(throws: ZoneParseError.self) { try ZoneResolver(zone: "a.test. A 127.0.0.1\nb.test. AAAA 127.0.0.1") }
        #expect(error?.line == 2)
    }

    @Test func isUsableAsAnExistential() async throws {
        let resolver: any MXResolver = self.resolver
        #expect(try await resolver.mx(for: "example.com").first?.name == "mx1.example.com")
    }
}
