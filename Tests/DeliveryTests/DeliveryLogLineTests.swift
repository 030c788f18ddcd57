@testable import Delivery
import Foundation
import Testing

/// The delivery log's hand-written JSON lines against what Foundation's `JSONEncoder`
/// writes for the same entries (the format the log had, and that postmasters' tools and
/// `DeliveryLog.entries` read).
@Suite struct DeliveryLogLineTests {
    static func foundationLine(_ entry: DeliveryLog.Entry) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, enc in
            var c = enc.singleValueContainer()
            try c.encode(DeliveryLog.iso(date))
        }
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(entry))
    }

    static func entry(_ text: String, full: Bool) -> DeliveryLog.Entry {
        DeliveryLog.Entry(
            time: Date(timeIntervalSince1970: 1_765_000_000.123_456), queueId: "01JF0000000000000000000000",
            recipient: "r\(text)@example.test", domain: "example.test",
            mxHost: full ? "mx/\(text).example.test" : nil, ip: full ? "127.0.0.1" : nil, tls: full,
            result: "deferred", code: full ? 451 : nil, enhanced: full ? "4.3.0" : nil,
            reply: full ? "451 4.3.0 \(text)" : nil, attempt: 3,
            nextAttempt: full ? Date(timeIntervalSince1970: 1_765_000_300.5) : nil,
            tenant: full ? "t-\(text)" : nil, campaign: full ? "c12" : nil, durationMs: full ? 1234 : nil)
    }

    static let texts = ["plain", "quote \" and backslash \\", "slash / and ünïcödé ✉", "tab\tnewline\ncr\r",
                        "", "emoji 📮 and \u{2028}"]

    @Test("the same bytes as JSONEncoder", arguments: texts)
    func sameBytes(text: String) throws {
        for full in [true, false] {
            let e = Self.entry(text, full: full)
            #expect(e.jsonLine() == (try Self.foundationLine(e)),
                    "\(String(decoding: e.jsonLine(), as: UTF8.self))")
        }
    }

    @Test("control characters are escaped and read back; one line whatever the reply holds")
    func controlCharacters() throws {
        let nasty = String(decoding: (0..<0x20).map { UInt8($0) } + Array("\u{7F}end".utf8), as: UTF8.self)
        let e = Self.entry(nasty, full: true)
        let line = e.jsonLine()
        #expect(!line.contains(0x0A) && !line.contains(0x0D))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .custom { d in
            let s = try d.singleValueContainer().decode(String.self)
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return f.date(from: s)!
        }
        let back = try decoder.decode(DeliveryLog.Entry.self, from: Data(line))
        #expect(back.reply == e.reply)
        #expect(back.recipient == e.recipient)
        #expect(back.tenant == e.tenant)
        #expect(abs(back.time.timeIntervalSince1970 - 1_765_000_000.123) < 0.0005)
    }
}
