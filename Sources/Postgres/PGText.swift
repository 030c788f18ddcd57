import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reading PostgreSQL's text format, and writing parameters in it.
public enum PGText {
    public static func int64(_ text: String?) -> Int64? { text.flatMap { Int64($0) } }
    public static func int(_ text: String?) -> Int? { text.flatMap { Int($0) } }
    public static func bool(_ text: String?) -> Bool { text == "t" }
    /// A `boolean` read strictly: nil unless `t` or `f` (for ``require(_:_:_:as:)``).
    public static func boolean(_ text: String?) -> Bool? { text == "t" ? true : text == "f" ? false : nil }

    /// `2026-11-24 01:05:45.749123+00` (DateStyle ISO; the session runs in UTC, but any
    /// `±hh[:mm[:ss]]` offset is honoured).
    public static func timestamp(_ text: String?) -> Date? {
        guard let text else { return nil }
        let bytes = Array(text.utf8)
        var i = 0
        func number(_ digits: Int) -> Int? {
            guard i + digits <= bytes.count else { return nil }
            var value = 0
            for _ in 0..<digits {
                let b = bytes[i]
                guard b >= 0x30 && b <= 0x39 else { return nil }
                value = value * 10 + Int(b - 0x30)
                i += 1
            }
            return value
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < bytes.count, bytes[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect(0x2D), let month = number(2), expect(0x2D), let day = number(2),
              i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x54
        else { return nil }
        i += 1
        guard let hour = number(2), expect(0x3A), let minute = number(2), expect(0x3A), let second = number(2)
        else { return nil }
        var fraction = 0.0
        if i < bytes.count, bytes[i] == 0x2E {
            i += 1
            var scale = 0.1
            while i < bytes.count, bytes[i] >= 0x30 && bytes[i] <= 0x39 {
                fraction += Double(bytes[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
        }
        var offset = 0
        if i < bytes.count, bytes[i] == 0x2B || bytes[i] == 0x2D {
            let sign = bytes[i] == 0x2D ? -1 : 1
            i += 1
            guard let h = number(2) else { return nil }
            var seconds = h * 3600
            if expect(0x3A), let m = number(2) { seconds += m * 60 }
            if expect(0x3A), let s = number(2) { seconds += s }
            offset = sign * seconds
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let epoch = timegm(&parts)
        return Date(timeIntervalSince1970: Double(epoch - offset) + fraction)
    }

    /// A `timestamptz` parameter: `2026-11-24T01:05:45.749123Z`.
    public static func timestamp(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        var micros = Int(((interval - Double(seconds)) * 1_000_000).rounded())
        if micros >= 1_000_000 {
            seconds += 1
            micros -= 1_000_000
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let microText = String(micros)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 6 - microText.count) + microText + "Z"
    }

    /// A `bigint[]` parameter: `{1,2,3}`.
    public static func array(_ values: [Int64]) -> String {
        "{" + values.map(String.init).joined(separator: ",") + "}"
    }

    /// A `bigint[]` column.
    public static func int64Array(_ text: String?) -> [Int64] {
        guard let text, text.count >= 2 else { return [] }
        return text.dropFirst().dropLast().split(separator: ",").compactMap { Int64($0) }
    }

    /// A `text[]` parameter: `{"a","b",NULL}`.
    public static func textArray(_ values: [String?]) -> String {
        "{" + values.map { value -> String in
            guard let value else { return "NULL" }
            var quoted = "\""
            for character in value.unicodeScalars {
                if character == "\"" || character == "\\" { quoted.unicodeScalars.append("\\") }
                quoted.unicodeScalars.append(character)
            }
            return quoted + "\""
        }.joined(separator: ",") + "}"
    }
}
