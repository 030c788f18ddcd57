import Foundation
import HeraldTestSupport
import Testing

@testable import Spool

/// The hand-written envelope writer against `JSONEncoder`, the reference: for every
/// envelope, the same bytes.
@Suite("Envelope writer")
struct EnvelopeWriterTests {
    /// Envelopes as Herald's producers make them (the SMTP listener, the HTTP API, the
    /// campaign expander, bounces), in every recipient state, with and without fractions
    /// of a second.
    static func heraldEnvelopes() throws -> [Envelope] {
        let arrival = Date(timeIntervalSince1970: 1_765_000_000.123456)
        var smtp = Envelope(
            id: QueueID.generate(now: arrival), arrival: arrival, sender: "sender@example.com",
            origin: EnvelopeOrigin(listener: "127.0.0.1:2587", clientAddress: "[::1]:40000",
                                   authenticatedUser: "app", helo: "client.example", tls: true),
            recipients: [
                EnvelopeRecipient(address: "a@b.example", notify: ["SUCCESS", "FAILURE", "DELAY"],
                                  orcpt: "rfc822;a@b.example"),
                EnvelopeRecipient(address: "never@b.example", notify: ["NEVER"]),
                EnvelopeRecipient(address: "ü@exämple.test"),
                EnvelopeRecipient(address: "d@b.example"),
            ],
            body: "8BITMIME", smtputf8: true, dsnRet: "HDRS", dsnEnvid: "QQ314159", tenant: "acme")
        smtp.size = 4096
        smtp.messageFile = MessageFileInfo(size: 4096, checksum: "crc32c:0123abcd")
        smtp.recipients[0].state = .delivered
        smtp.recipients[0].attempts = 1
        smtp.recipients[0].lastReply = "250 2.0.0 Ok: queued as 4XyZ"
        smtp.recipients[1].state = .deferred
        smtp.recipients[1].attempts = 3
        smtp.recipients[1].nextAttempt = Date(timeIntervalSince1970: 1_765_000_900)
        smtp.recipients[1].lastReply = "451 4.7.1 <never@b.example>: try again later"
        smtp.recipients[2].state = .failed
        smtp.recipients[2].attempts = 1
        smtp.recipients[2].lastReply = "550 5.1.1 \"ü\" unknown / no such user"

        var plain = SpoolFixtures.envelope(arrival: Date(timeIntervalSince1970: 1_765_000_000))
        plain.origin.helo = nil

        var api = Envelope(
            id: QueueID.generate(), arrival: Date(), sender: "news@acme.example",
            origin: EnvelopeOrigin(listener: "http", clientAddress: "api", authenticatedUser: "acme", helo: nil,
                                   tls: false),
            recipients: [EnvelopeRecipient(address: "x@y.test")], body: "8BITMIME", smtputf8: false, tenant: "acme")
        api.size = 512
        api.messageFile = MessageFileInfo(size: 512, checksum: "crc32c:ffffffff")

        var campaign = Envelope(
            id: QueueID.generate(), arrival: Date(timeIntervalSince1970: 1_765_000_000.5),
            sender: "bounce+c12.s99@mail.acme.example",
            origin: EnvelopeOrigin(listener: "campaign", clientAddress: "expander", authenticatedUser: "acme",
                                   helo: nil, tls: false),
            recipients: [EnvelopeRecipient(address: "subscriber@y.test")], body: "8BITMIME", smtputf8: false,
            tenant: "acme", campaign: "12",
            sendPolicy: SendPolicy(rate: Rate("100/m"), rateKey: "campaign:12",
                                   window: try SendWindow(start: "09:00", end: "18:00", timeZone: "Europe/Paris",
                                                          days: ["mon", "tue", "wed", "thu", "fri"]),
                                   maxAttempts: 5))
        campaign.size = 20_000
        campaign.messageFile = MessageFileInfo(size: 20_000, checksum: "crc32c:00000000")
        var rateOnly = campaign
        rateOnly.id = QueueID.generate()
        rateOnly.sendPolicy = SendPolicy(rate: Rate(count: 2.5, per: 60), rateKey: "campaign:13")
        var windowOnly = campaign
        windowOnly.id = QueueID.generate()
        windowOnly.sendPolicy = SendPolicy(window: try SendWindow(start: "22:00", end: "06:00", timeZone: "UTC"))
        var emptyPolicy = campaign
        emptyPolicy.id = QueueID.generate()
        emptyPolicy.sendPolicy = SendPolicy()

        var bounce = Envelope(
            id: QueueID.generate(), arrival: Date(timeIntervalSince1970: 1_765_000_000.000001), sender: "",
            origin: EnvelopeOrigin(listener: "bounce", clientAddress: "127.0.0.1", authenticatedUser: nil, helo: nil,
                                   tls: false),
            recipients: [EnvelopeRecipient(address: "sender@example.com")], body: "8BITMIME", smtputf8: false,
            tenant: "acme", campaign: "12")
        bounce.size = 1500
        bounce.messageFile = MessageFileInfo(size: 1500, checksum: "crc32c:89abcdef")

        // Empty arrays (which the encoder writes with an empty line inside).
        var emptyNotify = plain
        emptyNotify.id = QueueID.generate()
        emptyNotify.recipients = [EnvelopeRecipient(address: "e@b.example", notify: [])]
        var noRecipients = plain
        noRecipients.id = QueueID.generate()
        noRecipients.recipients = []

        return [EnvelopeTests.sample(), smtp, plain, api, campaign, rateOnly, windowOnly, emptyPolicy, bounce,
                emptyNotify, noRecipients] + (try EnvelopeReaderTests.samples())
    }

    @Test("every stored member of the envelope and its records is written (a member added later needs the writer too)")
    func everyMemberWritten() throws {
        let full = try Self.heraldEnvelopes().filter { $0.sendPolicy?.window != nil || $0.dsnRet != nil }
        try #require(full.count >= 2)
        // The keys the writer writes at each level, over envelopes that set every optional member.
        var written: [String: Set<String>] = [:]
        for envelope in full {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(EnvelopeWriter.encode(envelope)))
                as? [String: Any])
            written["Envelope", default: []].formUnion(json.keys)
            written["EnvelopeOrigin", default: []].formUnion((json["origin"] as? [String: Any] ?? [:]).keys)
            written["MessageFileInfo", default: []].formUnion((json["messageFile"] as? [String: Any] ?? [:]).keys)
            for recipient in json["recipients"] as? [[String: Any]] ?? [] {
                written["EnvelopeRecipient", default: []].formUnion(recipient.keys)
            }
        }
        func members(_ value: Any) -> Set<String> { Set(Mirror(reflecting: value).children.compactMap(\.label)) }
        let smtp = try #require(full.first { $0.dsnRet != nil })
        #expect(written["Envelope"] == members(smtp))
        #expect(written["EnvelopeOrigin"] == members(smtp.origin))
        #expect(written["MessageFileInfo"] == members(smtp.messageFile))
        #expect(written["EnvelopeRecipient"] == smtp.recipients.reduce(into: Set<String>()) { $0.formUnion(members($1)) })
    }

    @Test("envelopes as Herald makes them: the same bytes as JSONEncoder")
    func heraldMade() throws {
        for envelope in try Self.heraldEnvelopes() {
            let bytes = try EnvelopeCoding.encode(envelope)
            let reference = try EnvelopeCoding.encodeWithFoundation(envelope)
            #expect(bytes == reference, "\(String(decoding: bytes, as: UTF8.self))")
            #expect(try EnvelopeCoding.decode(bytes) == envelope.normalizingDates())
        }
    }

    @Test("every control character, quote, backslash, slash and non-ASCII text escapes as JSONEncoder escapes it")
    func everyCharacter() throws {
        var envelope = SpoolFixtures.envelope()
        var text = ""
        for scalar in 0..<0x300 { text.unicodeScalars.append(Unicode.Scalar(scalar)!) }
        text += "\u{2028}\u{2029}\u{FEFF}\u{FFFD}\u{10FFFF}😀👩‍👩‍👧 e\u{301}\r\n"
        envelope.sender = text
        envelope.recipients[0].lastReply = String(text.reversed())
        let bytes = try EnvelopeCoding.encode(envelope)
        #expect(bytes == (try EnvelopeCoding.encodeWithFoundation(envelope)))
        #expect(try EnvelopeCoding.decode(bytes) == envelope)
    }

    /// Text built from pieces the encoder treats specially, sometimes very long.
    static func adversarial(_ random: inout SplitMix64) -> String {
        let pieces = ["\u{0}", "\u{1}", "\u{8}", "\t", "\n", "\u{B}", "\u{C}", "\r", "\u{1B}", "\u{1F}", "\"", "\\",
                      "/", "\\/", "\u{7F}", "\u{85}", "\u{A0}", "\u{2028}", "\u{2029}", "\u{FEFF}", "é", "e\u{301}",
                      "😀", "👩‍👩‍👧", "\r\n", "中文", " ", "a", "Z", "0", "@", "\\u0041", "{", "}", "[", "]", ":", ",",
                      "null", "true", "<x@y.example>"]
        let count: Int
        switch Int.random(in: 0..<20, using: &random) {
        case 0: count = 0
        case 1: count = Int.random(in: 2_000...20_000, using: &random)
        default: count = Int.random(in: 1...24, using: &random)
        }
        var text = ""
        for _ in 0..<count { text += pieces.randomElement(using: &random)! }
        return text
    }

    /// A random envelope: every optional member present or not, adversarial text in every
    /// string, integers over the whole range, dates with and without fractions. With
    /// `decodable`, only what decodes back to the same envelope (valid send windows and
    /// rates as written, dates to the microsecond).
    static func randomEnvelope(_ random: inout SplitMix64, decodable: Bool) -> Envelope {
        func text() -> String { adversarial(&random) }
        func texts(_ count: ClosedRange<Int>) -> [String] {
            (0..<Int.random(in: count, using: &random)).map { _ in text() }
        }
        func maybe<T>(_ make: () -> T) -> T? { Bool.random(using: &random) ? make() : nil }
        func int() -> Int {
            switch Int.random(in: 0..<6, using: &random) {
            case 0: return [0, 1, -1, Int.max, Int.min, 9, 10, 99, 100].randomElement(using: &random)!
            case 1: return Int.random(in: Int.min...Int.max, using: &random)
            default: return Int.random(in: 0...100_000, using: &random)
            }
        }
        func date() -> Date {
            let seconds = Double(Int.random(in: -2_000_000_000...4_000_000_000, using: &random))
            switch Int.random(in: 0..<3, using: &random) {
            case 0: return Date(timeIntervalSince1970: seconds)
            case 1:
                let micros = Int.random(in: 0..<1_000_000, using: &random)
                return Date(timeIntervalSince1970: seconds + Double(micros) / 1e6)
            default: return Date(timeIntervalSince1970: seconds + Double.random(in: 0..<1, using: &random))
            }
        }
        func rate() -> Rate {
            let units = ["s", "m", "h", "d", "sec", "minute", "hour", "day"]
            let number = [String(Int.random(in: 1...100_000, using: &random)), "2.5", "0.25", " 7 ", "1e3"]
            if decodable || Bool.random(using: &random) {
                return Rate("\(number.randomElement(using: &random)!)/\(units.randomElement(using: &random)!)")!
            }
            return Rate(count: Double.random(in: 0.001...1e6, using: &random),
                        per: [1, 60, 3600, 86400, 7, 0.5].randomElement(using: &random)!)
        }
        func window() -> SendWindow {
            let zones = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]
            let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            func time(_ hours: Range<Int>) -> String {
                String(format: "%02d:%02d", Int.random(in: hours, using: &random), Int.random(in: 0..<60, using: &random))
            }
            var window = try! SendWindow(
                start: time(0..<12), end: time(12..<24),
                timeZone: zones.randomElement(using: &random)!,
                days: maybe { Array(days.shuffled(using: &random).prefix(Int.random(in: 1...7, using: &random))) })
            if !decodable {
                if Bool.random(using: &random) { window.start = text() }
                if Bool.random(using: &random) { window.end = text() }
                if Bool.random(using: &random) { window.timeZone = text() }
                if Bool.random(using: &random) { window.days = maybe { texts(0...3) } }
            }
            return window
        }
        func recipient() -> EnvelopeRecipient {
            var r = EnvelopeRecipient(address: text(), notify: maybe { texts(0...4) }, orcpt: maybe(text))
            r.state = [.pending, .delivered, .deferred, .failed].randomElement(using: &random)!
            r.attempts = int()
            r.nextAttempt = maybe(date)
            if decodable, let next = r.nextAttempt { r.nextAttempt = SpoolDate.normalized(next) }
            r.lastReply = maybe(text)
            return r
        }
        let policy = maybe {
            SendPolicy(rate: maybe(rate), rateKey: maybe(text), window: maybe(window), maxAttempts: maybe(int))
        }
        var envelope = Envelope(
            id: QueueID.generate(now: date()), arrival: date(), sender: text(),
            origin: EnvelopeOrigin(listener: text(), clientAddress: text(), authenticatedUser: maybe(text),
                                   helo: maybe(text), tls: Bool.random(using: &random)),
            recipients: (0..<Int.random(in: 0...5, using: &random)).map { _ in recipient() },
            body: maybe(text), smtputf8: Bool.random(using: &random), dsnRet: maybe(text), dsnEnvid: maybe(text),
            tenant: maybe(text), campaign: maybe(text), sendPolicy: policy)
        envelope.size = int()
        envelope.messageFile = MessageFileInfo(size: int(), checksum: text())
        if !decodable { envelope.version = int() }
        return envelope
    }

    @Test("random envelopes with adversarial text: the same bytes as JSONEncoder")
    func randomEnvelopes() throws {
        var random = SplitMix64(state: 0x5752_4954_4552)
        var mismatches = 0
        for round in 0..<3000 {
            let envelope = Self.randomEnvelope(&random, decodable: false)
            let bytes = try EnvelopeCoding.encode(envelope)
            let reference = try EnvelopeCoding.encodeWithFoundation(envelope)
            if bytes != reference {
                mismatches += 1
                if mismatches <= 3 {
                    let text = String(decoding: bytes, as: UTF8.self)
                    let expected = String(decoding: reference, as: UTF8.self)
                    Issue.record("round \(round): \(text)\n--- reference:\n\(expected)")
                }
            }
        }
        #expect(mismatches == 0)
    }

    @Test("random envelopes read back exactly through EnvelopeCoding.decode")
    func roundTrip() throws {
        var random = SplitMix64(state: 0x524F_554E_44)
        for _ in 0..<1500 {
            let envelope = Self.randomEnvelope(&random, decodable: true)
            let bytes = try EnvelopeCoding.encode(envelope)
            let decoded = try EnvelopeCoding.decode(bytes)
            #expect(decoded == envelope)
            #expect(decoded.sendPolicy?.window?.zone == envelope.sendPolicy?.window?.zone)
            // The hand-written reader takes every file the writer writes.
            #expect((try? EnvelopeReader.decode(bytes)) != nil)
        }
    }

    /// Not a timed test: it asserts only that both encoders agree, and prints what each
    /// costs per envelope in this build (figures from a release build are in
    /// docs/benchmarks.md).
    @Test("cost per envelope of both encoders, printed")
    func cost() throws {
        let envelopes = try Self.heraldEnvelopes()
        let rounds = 200
        var written = 0
        var reference = 0
        let clock = ContinuousClock()
        let writer = try clock.measure {
            for _ in 0..<rounds {
                for envelope in envelopes { written &+= try EnvelopeCoding.encode(envelope).count }
            }
        }
        let foundation = try clock.measure {
            for _ in 0..<rounds {
                for envelope in envelopes { reference &+= try EnvelopeCoding.encodeWithFoundation(envelope).count }
            }
        }
        #expect(written == reference)
        func nanoseconds(_ duration: Duration) -> Int {
            Int((duration / (rounds * envelopes.count)).components.attoseconds / 1_000_000_000)
        }
        print("envelope encode: EnvelopeWriter \(nanoseconds(writer)) ns, JSONEncoder \(nanoseconds(foundation)) ns"
            + " per envelope (\(envelopes.count) Herald-made envelopes x \(rounds))")
    }
}
