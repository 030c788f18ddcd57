import Testing

@testable import DNS

@Suite("MX helpers (no DNS)")
struct MXHelperTests {
    @Test func sortsByPreference() {
        let hosts = [
            MXHost(name: "c.example", preference: 30), MXHost(name: "a.example", preference: 10),
            MXHost(name: "b.example", preference: 20),
        ]
        var generator = SeededRandomNumberGenerator(seed: 1)
        #expect(MXHost.sortedByPreference(hosts, using: &generator).map(\.name) == ["a.example", "b.example", "c.example"])
        #expect(MXHost.sortedByPreference([]).isEmpty)
    }

    @Test func shufflesOnlyAmongEqualPreferences() {
        let hosts = [
            MXHost(name: "x.example", preference: 20), MXHost(name: "a.example", preference: 10),
            MXHost(name: "b.example", preference: 10), MXHost(name: "c.example", preference: 10),
        ]
        var generator = SeededRandomNumberGenerator(seed: 42)
        var firsts: Set<String> = []
        var orders: Set<[String]> = []
        for _ in 0..<200 {
            let sorted = MXHost.sortedByPreference(hosts, using: &generator)
            #expect(sorted.count == 4)
            #expect(sorted.last?.name == "x.example")
            #expect(Set(sorted.prefix(3).map(\.name)) == ["a.example", "b.example", "c.example"])
            firsts.insert(sorted[0].name)
            orders.insert(sorted.map(\.name))
        }
        #expect(firsts == ["a.example", "b.example", "c.example"])
        #expect(orders.count == 6)  // every permutation of the three equal ones
    }

    @Test func seededShuffleIsReproducible() {
        let hosts = (0..<8).map { MXHost(name: "mx\($0).example", preference: 10) }
        var one = SeededRandomNumberGenerator(seed: 7)
        var two = SeededRandomNumberGenerator(seed: 7)
        #expect(MXHost.sortedByPreference(hosts, using: &one) == MXHost.sortedByPreference(hosts, using: &two))
    }

    @Test func detectsNullMX() {
        #expect(isNullMX([MXHost(name: "", preference: 0)]))
        #expect(isNullMX([MXHost(name: ".", preference: 0)]))
        #expect(!isNullMX([]))
        #expect(!isNullMX([MXHost(name: "mx.example", preference: 0)]))
        // A "." among real exchangers is ignored rather than treated as null MX.
        #expect(!isNullMX([MXHost(name: "", preference: 0), MXHost(name: "mx.example", preference: 10)]))
    }

    @Test func siteIsTheSortedLowerCasedHostSet() {
        let hosts = [
            MXHost(name: "ALT1.ASPMX.L.Google.com.", preference: 20), MXHost(name: "aspmx.l.google.com", preference: 10),
            MXHost(name: "alt1.aspmx.l.google.com", preference: 30),
        ]
        #expect(mxSite(for: hosts) == "alt1.aspmx.l.google.com,aspmx.l.google.com")
        #expect(mxSite(for: hosts.reversed()) == mxSite(for: hosts))
        #expect(mxSite(for: []) == "")
        #expect(mxSite(for: [MXHost(name: "", preference: 0)]) == "")
    }

    @Test func errorsKnowTheirStatus() {
        #expect(DNSError.nullMX("null.example").enhancedStatus == "5.1.10")
        #expect(DNSError.nullMX("null.example").isPermanent)
        #expect(DNSError.nullMX("null.example").isNullMX)
        #expect(DNSError.noSuchDomain("nx.example").enhancedStatus == "5.1.2")
        #expect(DNSError.noSuchDomain("nx.example").isNoSuchDomain)
        #expect(DNSError.noAddress("mx.example").enhancedStatus == "5.1.2")
        #expect(DNSError.noAddress("mx.example").isPermanent)
        #expect(DNSError.noMailExchanger("txt.example").enhancedStatus == "5.1.2")
        #expect(DNSError.noMailExchanger("txt.example").isPermanent)
        #expect(!DNSError.noMailExchanger("txt.example").isNoSuchDomain)
        let temporary = DNSError.temporary("SERVFAIL", name: "broken.example")
        #expect(temporary.enhancedStatus == "4.4.3")
        #expect(!temporary.isPermanent && temporary.isTemporary)
        #expect(temporary.description == "broken.example: temporary DNS failure (SERVFAIL)")
        #expect(DNSError.nullMX("null.example").description.contains("null MX"))
        #expect(DNSError.noMailExchanger("txt.example").description.contains("no MX and no A/AAAA"))
    }

    @Test func namesAndLiterals() {
        #expect(DNSName.normalized(" Example.COM. ") == "example.com")
        #expect(DNSName.validated("example.com") == "example.com")
        #expect(DNSName.validated("") == nil)
        #expect(DNSName.validated("a..b") == nil)
        #expect(DNSName.validated(String(repeating: "a", count: 64) + ".com") == nil)
        #expect(DNSName.ipLiteral("[192.0.2.1]") == "192.0.2.1")
        #expect(DNSName.ipLiteral("[IPv6:2001:DB8::1]") == "2001:db8::1")
        #expect(DNSName.ipLiteral("::1") == "::1")
        #expect(DNSName.ipLiteral("mx.example") == nil)
        #expect(DNSName.isAddressLiteral("[192.0.2.1]"))
        #expect(!DNSName.isAddressLiteral("192.0.2.1"))
    }

    @Test func serverEntries() throws {
        #expect(try CAresEngine.serverEntry("127.0.0.1") == "127.0.0.1")
        #expect(try CAresEngine.serverEntry("127.0.0.1:5353") == "127.0.0.1:5353")
        #expect(try CAresEngine.serverEntry("[::1]:53") == "[::1]:53")
        #expect(try CAresEngine.serverEntry("::1") == "[::1]")
        #expect(try CAresEngine.serverEntry("[::1]") == "[::1]")
        #expect(throws: DNSConfigurationError.self) { try CAresEngine.serverEntry("dns.example:53") }
        #expect(throws: DNSConfigurationError.self) { try CAresEngine.serverEntry("127.0.0.1:0") }
        #expect(throws: DNSConfigurationError.self) { try CAresEngine.serverEntry("127.0.0.1:x") }
        #expect(throws: DNSConfigurationError.self) { try CAresResolver(servers: ["not-an-ip"]) }
    }

    @Test func fifoKeepsOrder() {
        var fifo = FIFO<Int>()
        for value in 0..<3000 { fifo.append(value) }
        var out: [Int] = []
        while let value = fifo.popFirst() {
            out.append(value)
            if value == 1500 { fifo.append(3000) }
        }
        #expect(out == Array(0...3000))
        #expect(fifo.isEmpty)
    }
}
