import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// MailFormat: RFC 5322 / MIME pieces without I/O, shared by the SMTP server (trace
/// headers), delivery (DSNs) and rendering (campaign messages).

/// Dates as RFC 5322 §3.3 writes them.
public enum MailDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Tue, 24 Nov 2026 00:07:37 +0000`: always UTC, whole seconds (rounded down), the
    /// day of the month with two digits.
    public static func rfc5322(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) +0000"
    }

    /// `2026-12-07T00:37:23.123Z`: ISO 8601 in UTC with `fractionDigits` (0 to 9) digits
    /// of fraction, from a count of `10^-fractionDigits`-second units since the epoch.
    /// Integer arithmetic and `gmtime_r` only: no formatter object, no locale, no lock
    /// (a Foundation `ISO8601DateFormatter` made per call cost more than the rest of a
    /// delivery's bookkeeping).
    public static func iso8601(units: Int64, fractionDigits: Int) -> String {
        precondition((0...9).contains(fractionDigits), "fractionDigits out of range")
        var scale: Int64 = 1
        for _ in 0..<fractionDigits { scale *= 10 }
        var seconds = units / scale
        var fraction = units % scale
        if fraction < 0 {
            fraction += scale
            seconds -= 1
        }
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        var out = [UInt8]()
        out.reserveCapacity(21 + fractionDigits)
        func put(_ value: Int, _ width: Int) {
            var digits = [UInt8](repeating: UInt8(ascii: "0"), count: width)
            var v = value
            var i = width - 1
            while i >= 0 {
                digits[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                i -= 1
            }
            out.append(contentsOf: digits)
        }
        put(Int(parts.tm_year) + 1900, 4)
        out.append(UInt8(ascii: "-"))
        put(Int(parts.tm_mon) + 1, 2)
        out.append(UInt8(ascii: "-"))
        put(Int(parts.tm_mday), 2)
        out.append(UInt8(ascii: "T"))
        put(Int(parts.tm_hour), 2)
        out.append(UInt8(ascii: ":"))
        put(Int(parts.tm_min), 2)
        out.append(UInt8(ascii: ":"))
        put(Int(parts.tm_sec), 2)
        if fractionDigits > 0 {
            out.append(UInt8(ascii: "."))
            put(Int(fraction), fractionDigits)
        }
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `date` as ``iso8601(units:fractionDigits:)`` writes it, the fraction rounded down.
    public static func iso8601(_ date: Date, fractionDigits: Int) -> String {
        var scale = 1.0
        for _ in 0..<fractionDigits { scale *= 10 }
        return iso8601(units: Int64((date.timeIntervalSince1970 * scale).rounded(.down)), fractionDigits: fractionDigits)
    }
}
