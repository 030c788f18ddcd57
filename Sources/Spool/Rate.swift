/// A pace: `count` messages every `per` seconds, written `N/unit` with N > 0 (decimals
/// allowed) and the unit `s`, `m`, `h` or `d` (also `sec`, `second`, `min`, `minute`,
/// `hour`, `day`): `"14/s"`, `"100/m"`, `"1000/h"`. The one grammar for `[[throttle]]`
/// and `[[route]]` rates, `[delivery] rate`, a campaign's `send_rate` and the rate in an
/// envelope's send policy. In JSON it is that text; an envelope whose rate does not
/// parse does not decode (the spool moves it to `corrupt/`, it is never sent unpaced).
public struct Rate: Sendable, Hashable, Codable, CustomStringConvertible {
    public let count: Double
    /// Seconds.
    public let per: Double
    /// As written (or made up from `count` and `per`).
    public let text: String

    public init(count: Double, per: Double) {
        self.count = count
        self.per = per
        let unit = [1: "s", 60: "m", 3600: "h", 86400: "d"][Int(exactly: per) ?? -1]
        let number = count == count.rounded() && abs(count) < 1e15 ? String(Int64(count)) : String(count)
        // Other periods as a per-second rate, so that the text always parses back.
        self.text = unit.map { "\(number)/\($0)" } ?? "\(count / per)/s"
    }

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let n = Double(parts[0].trimmingCharacters(in: .whitespaces)), n > 0, n.isFinite
        else { return nil }
        switch parts[1].trimmingCharacters(in: .whitespaces) {
        case "s", "sec", "second": per = 1
        case "m", "min", "minute": per = 60
        case "h", "hour": per = 3600
        case "d", "day": per = 86400
        default: return nil
        }
        count = n
        self.text = text
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let rate = Rate(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "\"\(text)\" is not a rate like 100/m"))
        }
        self = rate
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }

    /// Seconds between two messages at this rate.
    public var interval: Double { per / count }
    public var description: String { text }
}
