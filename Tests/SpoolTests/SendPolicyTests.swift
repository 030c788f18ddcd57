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

    @Test("a daytime window in a zone: open inside, closed outside, next opening and closing")
    func daytime() throws {
        let w = try SendWindow(start: "09:00", end: "18:00", timeZone: "Europe/Paris")
        // 2026-12-07 is a Monday; Paris is UTC+1 in winter.
        #expect(!w.isOpen(at: Self.utc("2026-12-07T07:59:00Z")))
        #expect(w.isOpen(at: Self.utc("2026-12-07T08:00:00Z")))
        #expect(w.openUntil(at: Self.utc("2026-12-07T12:00:00Z")) == Self.utc("2026-12-07T17:00:00Z"))
        #expect(!w.isOpen(at: Self.utc("2026-12-07T17:00:00Z")))
        #expect(w.nextOpening(atOrAfter: Self.utc("2026-12-07T06:00:00Z")) == Self.utc("2026-12-07T08:00:00Z"))
        #expect(w.nextOpening(atOrAfter: Self.utc("2026-12-07T18:00:00Z")) == Self.utc("2026-12-08T08:00:00Z"))
        let now = Self.utc("2026-12-07T10:00:00Z")
        #expect(w.nextOpening(atOrAfter: now) == now)
    }

    @Test("a window crossing midnight belongs to the day it opens on")
    func crossingMidnight() throws {
        // Opens Fridays only, 22:00 to 06:00 UTC.
        let w = try SendWindow(start: "22:00", end: "06:00", timeZone: "UTC", days: ["fri"])
        #expect(w.isOpen(at: Self.utc("2026-12-11T23:00:00Z")))   // Friday night
        #expect(w.isOpen(at: Self.utc("2026-12-12T05:59:00Z")))   // Saturday morning, same window
        #expect(w.openUntil(at: Self.utc("2026-12-11T23:00:00Z")) == Self.utc("2026-12-12T06:00:00Z"))
        #expect(!w.isOpen(at: Self.utc("2026-12-12T06:00:00Z")))
        #expect(!w.isOpen(at: Self.utc("2026-12-12T23:00:00Z")))  // Saturday night: not a Friday
        #expect(!w.isOpen(at: Self.utc("2026-12-11T05:00:00Z")))  // Friday morning: Thursday's window
        #expect(w.nextOpening(atOrAfter: Self.utc("2026-12-12T06:00:00Z")) == Self.utc("2026-12-18T22:00:00Z"))
    }

    @Test("days limit the window to weekdays")
    func weekdays() throws {
        let w = try SendWindow(start: "09:00", end: "17:00", timeZone: "America/New_York", days: ["MON", "tue", "wed", "thu", "fri"])
        #expect(w.days == ["mon", "tue", "wed", "thu", "fri"])
        // Saturday 2026-12-12 noon in New York (UTC-5): closed; opens Monday 09:00 = 14:00Z.
        let saturday = Self.utc("2026-12-12T17:00:00Z")
        #expect(!w.isOpen(at: saturday))
        #expect(w.nextOpening(atOrAfter: saturday) == Self.utc("2026-12-14T14:00:00Z"))
    }

    @Test("daylight saving: an opening in the spring gap moves to the first valid minute; autumn keeps local time")
    func daylightSaving() throws {
        // Europe/Paris skips 02:00-03:00 local on 2026-03-29 (03:00 CEST = 01:00Z).
        let gap = try SendWindow(start: "02:30", end: "05:00", timeZone: "Europe/Paris")
        #expect(gap.nextOpening(atOrAfter: Self.utc("2026-03-28T23:30:00Z")) == Self.utc("2026-03-29T01:00:00Z"))
        #expect(gap.isOpen(at: Self.utc("2026-03-29T02:30:00Z")))   // 04:30 CEST
        #expect(!gap.isOpen(at: Self.utc("2026-03-29T03:00:00Z")))  // 05:00 CEST
        // 09:00-18:00 is 07:00Z-16:00Z in summer time and 08:00Z-17:00Z after 2026-10-25.
        let day = try SendWindow(start: "09:00", end: "18:00", timeZone: "Europe/Paris")
        #expect(day.isOpen(at: Self.utc("2026-10-24T07:30:00Z")))
        #expect(!day.isOpen(at: Self.utc("2026-10-25T07:30:00Z")))
        #expect(day.nextOpening(atOrAfter: Self.utc("2026-10-25T07:30:00Z")) == Self.utc("2026-10-25T08:00:00Z"))
        #expect(day.openUntil(at: Self.utc("2026-10-25T12:00:00Z")) == Self.utc("2026-10-25T17:00:00Z"))
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
