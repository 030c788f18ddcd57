import Delivery
import Foundation
import Spool
import Testing

/// When a send window is open (Delivery's calendar arithmetic on the spool's validated window).
@Suite("Send window calendar")
struct SendWindowCalendarTests {
    /// An instant given in UTC.
    static func utc(_ text: String) -> Date {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)!
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
}
