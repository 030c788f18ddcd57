import Foundation
import Testing

@testable import Spool

@Suite("Send policy and send window")
struct SendPolicyTests {
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
        envelope.sendPolicy = SendPolicy(rate: Rate("100/m"), rateKey: "campaign:12",
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

        // The rate is JSON text as written, and typed once read: a bad one does not decode.
        #expect(text.contains("\"rate\" : \"100/m\""))
        #expect(try EnvelopeCoding.decode(bytes).sendPolicy?.rate?.interval == 0.6)
        let badRate = text.replacingOccurrences(of: "\"100/m\"", with: "\"100/fortnight\"")
        #expect(throws: (any Error).self) { try EnvelopeCoding.decode(Array(badRate.utf8)) }
    }

    @Test("rates: the grammar, made-up text, intervals")
    func rates() throws {
        #expect(Rate("14/s")?.interval == 1.0 / 14)
        #expect(Rate(" 100 / minute ")?.per == 60)
        #expect(Rate("2.5/h")?.count == 2.5)
        for bad in ["", "10", "0/s", "-1/s", "1/w", "inf/s", "nan/s", "1/s/s"] {
            #expect(Rate(bad) == nil, "\(bad)")
        }
        #expect(Rate(count: 50, per: 1).text == "50/s")
        #expect(Rate(count: 1000, per: 3600).description == "1000/h")
        let odd = try #require(Rate(Rate(count: 3, per: 7).text), "made-up text parses back")
        #expect(abs(odd.interval - 7.0 / 3) < 1e-9)
    }
}
