import CCares
import Testing

@testable import DNS

@Suite("DNS cache")
struct DNSCacheTests {
    let mxKey = QueryKey(name: "example.com", type: .mx)
    let mxAnswer = QueryAnswer.mx([MXHost(name: "mx.example.com", preference: 10)])

    @Test func positiveAnswersLiveForTheirTTL() {
        var cache = DNSCache(policy: DNSCachePolicy())
        cache.insert(self.mxKey, self.mxAnswer, ttl: .seconds(300), now: .seconds(1000))
        #expect(cache.lookup(self.mxKey, now: .seconds(1000)) == self.mxAnswer)
        #expect(cache.lookup(self.mxKey, now: .seconds(1299)) == self.mxAnswer)
        #expect(cache.lookup(QueryKey(name: "example.com", type: .a), now: .seconds(1000)) == nil)
        #expect(cache.lookup(self.mxKey, now: .seconds(1300)) == nil)
        #expect(cache.count == 0)  // the expired entry is gone
    }

    @Test func zeroTTLIsNotCachedAndLongTTLsAreCapped() {
        var cache = DNSCache(policy: DNSCachePolicy(maximumTTL: .seconds(100)))
        cache.insert(self.mxKey, self.mxAnswer, ttl: .zero, now: .zero)
        #expect(cache.lookup(self.mxKey, now: .zero) == nil)
        cache.insert(self.mxKey, self.mxAnswer, ttl: .seconds(1_000_000), now: .zero)
        #expect(cache.lookup(self.mxKey, now: .seconds(99)) == self.mxAnswer)
        #expect(cache.lookup(self.mxKey, now: .seconds(100)) == nil)
    }

    @Test func negativeAnswersUseTheSOAOrTheDefault() {
        var cache = DNSCache(policy: DNSCachePolicy(negativeTTL: .seconds(60), maximumNegativeTTL: .seconds(600)))
        let nx = QueryKey(name: "nx.example", type: .mx)
        let soa = QueryKey(name: "soa.example", type: .mx)
        let long = QueryKey(name: "long.example", type: .a)
        cache.insert(nx, .noSuchDomain, ttl: nil, now: .zero)
        cache.insert(soa, .noData, ttl: .seconds(10), now: .zero)
        cache.insert(long, .noData, ttl: .seconds(86_400), now: .zero)
        #expect(cache.lookup(soa, now: .seconds(9)) == .noData)
        #expect(cache.lookup(soa, now: .seconds(10)) == nil)
        #expect(cache.lookup(nx, now: .seconds(59)) == .noSuchDomain)
        #expect(cache.lookup(nx, now: .seconds(60)) == nil)
        #expect(cache.lookup(long, now: .seconds(599)) == .noData)
        #expect(cache.lookup(long, now: .seconds(600)) == nil)
    }

    @Test func temporaryFailuresAreNotCachedUnlessAsked() {
        var cache = DNSCache(policy: DNSCachePolicy())
        cache.insert(self.mxKey, .temporary("SERVFAIL"), ttl: nil, now: .zero)
        #expect(cache.lookup(self.mxKey, now: .zero) == nil)
        var brief = DNSCache(policy: DNSCachePolicy(temporaryFailureTTL: .seconds(5)))
        brief.insert(self.mxKey, .temporary("SERVFAIL"), ttl: nil, now: .zero)
        #expect(brief.lookup(self.mxKey, now: .seconds(4)) == .temporary("SERVFAIL"))
        #expect(brief.lookup(self.mxKey, now: .seconds(5)) == nil)
        var disabled = DNSCache(policy: .disabled)
        disabled.insert(self.mxKey, self.mxAnswer, ttl: .seconds(300), now: .zero)
        disabled.insert(QueryKey(name: "nx", type: .a), .noSuchDomain, ttl: nil, now: .zero)
        #expect(disabled.count == 0)
    }

    @Test func staysWithinItsSize() {
        var cache = DNSCache(policy: DNSCachePolicy(maximumEntries: 100))
        for index in 0..<50 {
            cache.insert(QueryKey(name: "old\(index).example", type: .a), .addresses(["192.0.2.1"]), ttl: .seconds(10), now: .zero)
        }
        for index in 0..<1000 {
            cache.insert(
                QueryKey(name: "h\(index).example", type: .a), .addresses(["192.0.2.1"]), ttl: .seconds(300), now: .seconds(20))
            #expect(cache.count <= 100)
        }
        // The newest entry is always kept.
        #expect(cache.lookup(QueryKey(name: "h999.example", type: .a), now: .seconds(20)) != nil)
    }
}

/// Builds DNS responses by hand (uncompressed names) for the parser tests.
private enum Wire {
    struct RR {
        var name: String
        var type: UInt16
        var ttl: UInt32
        var data: [UInt8]
    }

    static func name(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for label in text.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes += label.utf8
        }
        return bytes + [0]
    }

    static func u16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    static func u32(_ value: UInt32) -> [UInt8] { u16(UInt16(value >> 16)) + u16(UInt16(value & 0xFFFF)) }

    static func mx(_ preference: UInt16, _ host: String) -> [UInt8] { u16(preference) + name(host) }

    static func soa(minimum: UInt32) -> [UInt8] {
        name("ns.example") + name("hostmaster.example") + u32(1) + u32(7200) + u32(900) + u32(1_209_600) + u32(minimum)
    }

    static func message(
        rcode: UInt8 = 0, question: String, type: UInt16, answers: [RR] = [], authority: [RR] = []
    ) -> [UInt8] {
        var bytes = u16(0x1234) + [0x81, 0x80 | rcode] + u16(1) + u16(UInt16(answers.count))
        bytes += u16(UInt16(authority.count)) + u16(0)
        bytes += name(question) + u16(type) + u16(1)
        for record in answers + authority {
            bytes += name(record.name) + u16(record.type) + u16(1) + u32(record.ttl)
            bytes += u16(UInt16(record.data.count)) + record.data
        }
        return bytes
    }
}

@Suite("DNS wire summary and c-ares answer parsing")
struct DNSWireTests {
    let mxResponse = Wire.message(
        question: "example.com", type: 15,
        answers: [
            .init(name: "example.com", type: 15, ttl: 300, data: Wire.mx(10, "mx1.example.com")),
            .init(name: "example.com", type: 15, ttl: 120, data: Wire.mx(20, "MX2.Example.com")),
        ])

    @Test func summarizesAnswerTTLs() throws {
        let summary = try #require(self.mxResponse.withUnsafeBytes { DNSMessageSummary($0) })
        #expect(summary.responseCode == 0)
        #expect(summary.answers.count == 2)
        #expect(summary.answerTTL(type: 15) == 120)
        #expect(summary.answerTTL(type: 1) == nil)
        #expect(summary.negativeTTL == nil)
    }

    @Test func negativeTTLIsTheSmallerOfSOATTLAndMinimum() throws {
        let nx = Wire.message(
            rcode: 3, question: "nx.example", type: 15,
            authority: [.init(name: "example", type: 6, ttl: 900, data: Wire.soa(minimum: 30))])
        let summary = try #require(nx.withUnsafeBytes { DNSMessageSummary($0) })
        #expect(summary.responseCode == 3)
        #expect(summary.negativeTTL == 30)
        let short = Wire.message(
            question: "nodata.example", type: 1,
            authority: [.init(name: "example", type: 6, ttl: 5, data: Wire.soa(minimum: 3600))])
        #expect(short.withUnsafeBytes { DNSMessageSummary($0) }?.negativeTTL == 5)
    }

    @Test func malformedMessagesGiveNil() {
        #expect([UInt8]().withUnsafeBytes { DNSMessageSummary($0) } == nil)
        for length in [5, 12, 20, self.mxResponse.count - 1] {
            let truncated = Array(self.mxResponse.prefix(length))
            #expect(truncated.withUnsafeBytes { DNSMessageSummary($0) } == nil)
        }
        var loop = self.mxResponse
        loop[12] = 0x80  // a reserved label type
        #expect(loop.withUnsafeBytes { DNSMessageSummary($0) } == nil)
    }

    @Test func interpretsMXAnswers() {
        let (answer, ttl) = self.mxResponse.withUnsafeBytes {
            CAresEngine.interpret(QueryKey(name: "example.com", type: .mx), status: ARES_SUCCESS, response: $0)
        }
        #expect(answer == .mx([MXHost(name: "mx1.example.com", preference: 10), MXHost(name: "mx2.example.com", preference: 20)]))
        #expect(ttl == .seconds(120))
    }

    @Test func interpretsNullMX() {
        let null = Wire.message(
            question: "null.example", type: 15,
            answers: [.init(name: "null.example", type: 15, ttl: 3600, data: Wire.u16(0) + [0])])
        let (answer, ttl) = null.withUnsafeBytes {
            CAresEngine.interpret(QueryKey(name: "null.example", type: .mx), status: ARES_SUCCESS, response: $0)
        }
        #expect(answer == .mx([MXHost(name: "", preference: 0)]))
        #expect(ttl == .seconds(3600))
    }

    @Test func interpretsAddressAnswers() {
        let a = Wire.message(
            question: "mx.example", type: 1,
            answers: [
                .init(name: "mx.example", type: 1, ttl: 60, data: [192, 0, 2, 1]),
                .init(name: "mx.example", type: 1, ttl: 30, data: [192, 0, 2, 2]),
            ])
        let (v4, v4TTL) = a.withUnsafeBytes {
            CAresEngine.interpret(QueryKey(name: "mx.example", type: .a), status: ARES_SUCCESS, response: $0)
        }
        #expect(v4 == .addresses(["192.0.2.1", "192.0.2.2"]))
        #expect(v4TTL == .seconds(30))
        let aaaa = Wire.message(
            question: "mx.example", type: 28,
            answers: [.init(name: "mx.example", type: 28, ttl: 90, data: [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [1])])
        let (v6, v6TTL) = aaaa.withUnsafeBytes {
            CAresEngine.interpret(QueryKey(name: "mx.example", type: .aaaa), status: ARES_SUCCESS, response: $0)
        }
        #expect(v6 == .addresses(["2001:db8::1"]))
        #expect(v6TTL == .seconds(90))
    }

    @Test func interpretsFailures() {
        let nx = Wire.message(
            rcode: 3, question: "nx.example", type: 15,
            authority: [.init(name: "example", type: 6, ttl: 900, data: Wire.soa(minimum: 30))])
        let (answer, ttl) = nx.withUnsafeBytes {
            CAresEngine.interpret(QueryKey(name: "nx.example", type: .mx), status: ARES_ENOTFOUND, response: $0)
        }
        #expect(answer == .noSuchDomain)
        #expect(ttl == .seconds(30))
        let key = QueryKey(name: "x.example", type: .a)
        #expect(CAresEngine.interpret(key, status: ARES_ENODATA, response: nil).0 == .noData)
        #expect(CAresEngine.interpret(key, status: ARES_ESERVFAIL, response: nil).0 == .temporary("SERVFAIL"))
        #expect(CAresEngine.interpret(key, status: ARES_ETIMEOUT, response: nil).0 == .temporary("timed out"))
        #expect(CAresEngine.interpret(key, status: ARES_EREFUSED, response: nil).0 == .temporary("REFUSED"))
        #expect(CAresEngine.interpret(key, status: ARES_EBADNAME, response: nil).0 == .invalidName)
    }
}
