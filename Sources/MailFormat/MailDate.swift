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
}
