import Foundation
import Spool

/// When a campaign's send window is open: local wall-clock arithmetic in the window's
/// zone, minute-granular. An opening that falls in a spring daylight-saving gap moves
/// to the first minute that exists; autumn's repeated hour keeps local time.
extension SendWindow {
    private var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        return calendar
    }

    /// The instant the window opens on the local day containing `day` (the first valid
    /// instant at or after the opening time when a DST gap swallows it).
    private func opening(onDayOf day: Date, _ calendar: Calendar) -> Date {
        let midnight = calendar.startOfDay(for: day)
        var components = calendar.dateComponents([.year, .month, .day], from: midnight)
        components.hour = startMinute / 60
        components.minute = startMinute % 60
        if let exact = calendar.date(from: components),
           calendar.component(.hour, from: exact) == startMinute / 60,
           calendar.component(.minute, from: exact) == startMinute % 60 {
            return exact
        }
        // Skipped by a spring-forward change: the first minute at or after it that exists.
        var t = midnight.addingTimeInterval(TimeInterval(max(0, startMinute - 120) * 60))
        for _ in 0..<300 {
            let local = calendar.component(.hour, from: t) * 60 + calendar.component(.minute, from: t)
            if local >= startMinute && calendar.isDate(t, inSameDayAs: midnight) { break }
            t = t.addingTimeInterval(60)
        }
        return t
    }

    /// The window's length in minutes of local wall-clock time.
    private var lengthMinutes: Int { (endMinute - startMinute + 1440) % 1440 }

    /// The closing instant of a window that opened at `open`.
    private func closing(after open: Date, _ calendar: Calendar) -> Date {
        let openDay = calendar.startOfDay(for: open)
        let closeDay = endMinute > startMinute ? openDay : calendar.date(byAdding: .day, value: 1, to: openDay)!
        var components = calendar.dateComponents([.year, .month, .day], from: closeDay)
        components.hour = endMinute / 60
        components.minute = endMinute % 60
        return calendar.date(from: components) ?? open.addingTimeInterval(TimeInterval(lengthMinutes * 60))
    }

    private func opensOn(_ day: Date, _ calendar: Calendar) -> Bool {
        guard let weekdays else { return true }
        return weekdays.contains(calendar.component(.weekday, from: day))
    }

    public func isOpen(at date: Date) -> Bool { openUntil(at: date) != nil }

    /// When the window open at `date` closes; nil when it is closed at `date`.
    public func openUntil(at date: Date) -> Date? {
        let calendar = self.calendar
        // A window that contains `date` opened today or (crossing midnight) yesterday.
        for offset in [0, -1] {
            guard let day = calendar.date(byAdding: .day, value: offset, to: date), opensOn(day, calendar) else { continue }
            let open = opening(onDayOf: day, calendar)
            let close = closing(after: open, calendar)
            if open <= date && date < close { return close }
        }
        return nil
    }

    /// The next instant at or after `date` at which the window is open (`date` itself
    /// when it is open now).
    public func nextOpening(atOrAfter date: Date) -> Date {
        if isOpen(at: date) { return date }
        let calendar = self.calendar
        for offset in 0...8 {
            guard let day = calendar.date(byAdding: .day, value: offset, to: date), opensOn(day, calendar) else { continue }
            let open = opening(onDayOf: day, calendar)
            if open >= date { return open }
        }
        return date.addingTimeInterval(7 * 86_400)  // unreachable: some day of the next 8 opens
    }
}
