import Foundation
import HeraldTestSupport
import Testing

@testable import Spool

@Suite("Envelope JSON")
struct EnvelopeTests {
    static func sample() -> Envelope {
        var envelope = Envelope(
            id: QueueID.generate(), arrival: Date(timeIntervalSince1970: 1_700_000_000.654321), sender: "",
            origin: EnvelopeOrigin(
                listener: "127.0.0.1:2587", clientAddress: "[::1]:40000", authenticatedUser: "app", helo: "h.example",
                tls: true),
            recipients: [
                EnvelopeRecipient(address: "a@b.example", notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;a@b.example"),
                EnvelopeRecipient(address: "ü@exämple.test"),
            ],
            body: "8BITMIME", smtputf8: true, dsnRet: "HDRS", dsnEnvid: "QQ314159", tenant: "acme", campaign: "spring")
        envelope.recipients[1].state = .deferred
        envelope.recipients[1].attempts = 2
        envelope.recipients[1].nextAttempt = Date(timeIntervalSince1970: 1_700_000_900.5)
        envelope.recipients[1].lastReply = "451 4.7.1 try later"
        return envelope
    }

    @Test("round trip through the file format is exact")
    func roundTrip() throws {
        let envelope = EnvelopeTests.sample()
        let decoded = try EnvelopeCoding.decode(EnvelopeCoding.encode(envelope))
        #expect(decoded == envelope)
    }

    @Test("pretty-printed, sorted keys, ISO-8601 UTC dates with microseconds, readable by jq")
    func fileFormat() throws {
        let envelope = EnvelopeTests.sample()
        let text = String(decoding: try EnvelopeCoding.encode(envelope), as: UTF8.self)
        #expect(text.hasSuffix("}\n"))
        #expect(text.contains("\n  \"arrival\" : \"2023-11-14T22:13:20.654321Z\""))
        #expect(text.contains("\"nextAttempt\" : \"2023-11-14T22:28:20.500000Z\""))
        #expect(text.contains("\"sender\" : \"\""))
        #expect(text.contains("\"id\" : \"\(envelope.id.rawValue)\""))
        #expect(text.contains("\"checksum\" : \"\""))
        #expect(text.contains("\"version\" : 1"))
        // Top-level keys appear in sorted order.
        let topLevelKeys = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map {
            $0.dropFirst(3).prefix { $0 != "\"" }
        }
        #expect(topLevelKeys.map(String.init) == topLevelKeys.map(String.init).sorted())
        #expect(topLevelKeys.count == 14)
        // Plain JSON for other tools.
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(object?["smtputf8"] as? Bool == true)
    }

    @Test("dates are kept to the microsecond; the stored form is stable")
    func dateNormalisation() throws {
        let odd = Date(timeIntervalSinceReferenceDate: 771_234_567.123_456_789)
        let normalized = SpoolDate.normalized(odd)
        #expect(abs(normalized.timeIntervalSince(odd)) < 0.000_001)
        #expect(SpoolDate.normalized(normalized) == normalized)
        #expect(SpoolDate.parse(SpoolDate.format(normalized)) == normalized)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<1000 {
            let date = Date(timeIntervalSince1970: Double.random(in: 0..<4_000_000_000, using: &generator))
            let stored = SpoolDate.normalized(date)
            #expect(SpoolDate.parse(SpoolDate.format(stored)) == stored)
        }
    }

    @Test("hand-edited dates: no fraction, offsets, more digits")
    func lenientParsing() {
        let base = Date(timeIntervalSince1970: 1_735_787_045)  // 2025-01-02T03:04:05Z
        #expect(SpoolDate.parse("2025-01-02T03:04:05Z") == base)
        #expect(SpoolDate.parse("2025-01-02T05:04:05+02:00") == base)
        #expect(SpoolDate.parse("2025-01-02T03:04:05.5Z") == SpoolDate.date(micros: 1_735_787_045_500_000))
        #expect(SpoolDate.parse("2025-01-02T03:04:05.123456789Z") == SpoolDate.date(micros: 1_735_787_045_123_456))
        #expect(SpoolDate.parse("1969-12-31T23:59:59.500000Z") == SpoolDate.date(micros: -500_000))
        #expect(SpoolDate.format(SpoolDate.date(micros: -500_000)) == "1969-12-31T23:59:59.500000Z")
        for bad in [
            "", "2025-01-02", "2025-01-02T03:04:05", "2025-13-02T03:04:05Z", "2025-01-02T03:04:05.Z",
            "2025-01-02T03:04:05Zjunk", "2025-01-02 03:04:05Z",
        ] {
            #expect(SpoolDate.parse(bad) == nil, "\(bad)")
        }
    }

    @Test("new recipients start pending with no attempts")
    func recipientDefaults() {
        let recipient = EnvelopeRecipient(address: "x@y.example")
        #expect(recipient.state == .pending)
        #expect(recipient.attempts == 0)
        #expect(recipient.nextAttempt == nil && recipient.lastReply == nil && recipient.notify == nil)
        let envelope = SpoolFixtures.envelope()
        #expect(envelope.version == 1)
        #expect(envelope.size == 0 && envelope.messageFile.checksum.isEmpty)
    }
}

@Suite("SpoolError")
struct SpoolErrorTests {
    @Test("errno mapping: ENOSPC and EDQUOT are disk-full, the rest I/O failures with context")
    func mapping() {
        #expect(SpoolError.system("write", "/s/tmp/x", ENOSPC).isDiskFull)
        #expect(SpoolError.system("fsync", "/s/tmp/x", EDQUOT).isDiskFull)
        let io = SpoolError.system("rename to /s/queue/ab/X.env", "/s/tmp/X", EIO)
        #expect(io.isIOFailure && !io.isDiskFull)
        #expect(io.errno == EIO)
        #expect(io.description.contains("/s/tmp/X"))
        #expect(io.description.contains("Input/output error"))
        let id = QueueID.generate()
        #expect(SpoolError.notFound(id).isNotFound)
        #expect(SpoolError.notFound(id).queueID == id)
        #expect(SpoolError.corrupt(id, reason: "bad").description.contains("bad"))
    }
}
