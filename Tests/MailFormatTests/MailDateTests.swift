import Foundation
import MailFormat
import Testing

@Suite struct MailDateTests {
    @Test("RFC 5322 dates in UTC, whole seconds, two-digit days", arguments: [
        (0.0, "Thu, 01 Jan 1970 00:00:00 +0000"),
        (1_700_000_000, "Tue, 14 Nov 2023 22:13:20 +0000"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
        (1_704_067_199.9, "Sun, 31 Dec 2023 23:59:59 +0000"),
        (1_709_629_200, "Tue, 05 Mar 2024 09:00:00 +0000"),
        (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 +0000"),
        (-1, "Wed, 31 Dec 1969 23:59:59 +0000"),
    ])
    func formats(seconds: Double, expected: String) {
        #expect(MailDate.rfc5322(Date(timeIntervalSince1970: seconds)) == expected)
    }

    @Test("the same instant as Foundation reads it back")
    func roundTrips() throws {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        for seconds in stride(from: 0.0, to: 4_000_000_000, by: 86_399 * 97) {
            let text = MailDate.rfc5322(Date(timeIntervalSince1970: seconds))
            let parsed = try #require(formatter.date(from: text), "\(text)")
            #expect(parsed.timeIntervalSince1970 == seconds)
        }
    }

    @Test("ISO 8601 times equal Foundation's formatter's, at every fraction width, before and after 1970")
    func iso8601MatchesFoundation() {
        var generator = SystemRandomNumberGenerator()
        let foundation = ISO8601DateFormatter()
        foundation.formatOptions = [.withInternetDateTime]
        let samples: [Double] = [0, -0.001, -1, 1_700_000_000.999_999, 951_782_400, 4_102_444_799.5]
            + (0..<500).map { _ in Double.random(in: -2_000_000_000...4_000_000_000, using: &generator) }
        for sample in samples {
            let date = Date(timeIntervalSince1970: sample)
            let t = date.timeIntervalSince1970   // what the date holds (kept relative to 2001)
            let seconds = foundation.string(from: Date(timeIntervalSince1970: t.rounded(.down)))
            #expect(MailDate.iso8601(date, fractionDigits: 0) == seconds, "\(t)")
            for digits in [3, 6] {
                let text = MailDate.iso8601(date, fractionDigits: digits)
                var scale = 1.0
                for _ in 0..<digits { scale *= 10 }
                let fraction = Int((t * scale).rounded(.down) - (t.rounded(.down) * scale))
                let padded = String(repeating: "0", count: digits - String(fraction).count) + String(fraction)
                #expect(text == seconds.dropLast() + "." + padded + "Z", "\(t) with \(digits) digits")
            }
        }
        #expect(MailDate.iso8601(units: -1, fractionDigits: 6) == "1969-12-31T23:59:59.999999Z")
        #expect(MailDate.iso8601(units: 1_234, fractionDigits: 3) == "1970-01-01T00:00:01.234Z")
    }
}
