import Foundation
import Testing

@testable import Spool

@Suite("Send policy and send window")
struct SendPolicyTests {
    /// An instant given in UTC.
    static func utc(_ text: String) -> Date {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)!
    }

    @Test("invalid windows are refused with a message naming the field")
    func validation() {
        let cases: [(String, String, String, [String]?, String)] = [
            ("9:00", "18:00", "UTC", nil, "start:"),
            ("24:00", "18:00", "UTC", nil, "start:"),
            ("09:00", "18:60", "UTC", nil, "end:"),
            ("09:00", "09:00", "UTC", nil, "end:"),
            ("09:00", "18:00", "Mars/Olympus", nil, "time_zone:"),
            ("09:00", "18:00", "UTC", [], "days:"),
            ("09:00", "18:00", "UTC", ["mon", "funday"], "days:"),
        ]
        for (start, end, zone, days, field) in cases {
            do {
                _ = try SendWindow(start: start, end: end, timeZone: zone, days: days)
                Issue.record("accepted \(start)-\(end) \(zone) \(days ?? [])")
            } catch {
                #expect(error.message.hasPrefix(field), "\(error.message)")
            }
        }
    }

    @Test("an envelope keeps its send policy; envelopes without one still read; a bad window does not decode")
    func envelopeRoundTrip() throws {
        var envelope = EnvelopeTests.sample()
        envelope.sendPolicy = SendPolicy(rate: "100/m", rateKey: "campaign:12",
                                         window: try SendWindow(start: "09:00", end: "18:00", timeZone: "Europe/Paris",
                                                                days: ["mon", "fri"]))
        let bytes = try EnvelopeCoding.encode(envelope)
        #expect(try EnvelopeCoding.decode(bytes) == envelope)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("\"sendPolicy\""))
        #expect(text.contains("\"timeZone\" : \"Europe/Paris\""))

        let plain = EnvelopeTests.sample()
        #expect(!String(decoding: try EnvelopeCoding.encode(plain), as: UTF8.self).contains("sendPolicy"))
        #expect(try EnvelopeCoding.decode(EnvelopeCoding.encode(plain)).sendPolicy == nil)

        let broken = text.replacingOccurrences(of: "\"Europe/Paris\"", with: "\"Nowhere/Land\"")
        #expect(throws: (any Error).self) { try EnvelopeCoding.decode(Array(broken.utf8)) }
    }
}
