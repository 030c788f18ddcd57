import Foundation

/// How a message's delivery is paced, beyond the configured throttles: set on campaign
/// messages by the campaign expander, honoured by the delivery queue manager.
public struct SendPolicy: Codable, Sendable, Equatable {
    /// Messages per unit for every message sharing `rateKey`, e.g. `"100/m"` in JSON.
    public var rate: Rate?
    /// Bucket name shared by all messages with the same key (e.g. `"campaign:12"`);
    /// `rate` applies only with a key.
    public var rateKey: String?
    /// Attempts start only while this window is open.
    public var window: SendWindow?
    /// A recipient still deferred on this attempt fails (a campaign's `max_attempts`;
    /// the lowest of this and the configured limits applies).
    public var maxAttempts: Int?

    public init(rate: Rate? = nil, rateKey: String? = nil, window: SendWindow? = nil, maxAttempts: Int? = nil) {
        self.maxAttempts = maxAttempts
        self.rate = rate
        self.rateKey = rateKey
        self.window = window
    }
}

public struct SendWindowError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(_ message: String) { self.message = message }
}

/// A daily local time-of-day window in an IANA zone during which delivery attempts may
/// start, e.g. 09:00–18:00 Europe/Paris on weekdays. The spool only carries and
/// validates it; when it is open is worked out by Delivery. `end` before `start` crosses
/// midnight (22:00–06:00); `days` names the days on which the window *opens*.
///
/// Decoding validates like the initializer: an envelope with an invalid window does not
/// decode, and the spool treats it like any unreadable envelope (moved to `corrupt/`,
/// never delivered blindly).
public struct SendWindow: Codable, Sendable, Hashable {
    /// `"HH:MM"`, 24-hour.
    public var start: String
    public var end: String
    /// IANA identifier, e.g. `"Europe/Paris"`.
    public var timeZone: String
    /// Subset of `mon` … `sun`; nil = every day.
    public var days: [String]?

    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  // Calendar weekday 1…7

    /// The validated parts: opening and closing as minutes after local midnight, the
    /// zone, and the `Calendar` weekdays (1 = Sunday) the window opens on (nil = every day).
    /// The calendar arithmetic on them is Delivery's (`SendWindow.openUntil(at:)`).
    public let startMinute: Int
    public let endMinute: Int
    public let zone: TimeZone
    public let weekdays: Set<Int>?

    enum CodingKeys: String, CodingKey { case start, end, timeZone, days }

    public init(start: String, end: String, timeZone: String, days: [String]? = nil) throws(SendWindowError) {
        guard let s = Self.minutes(start) else {
            throw SendWindowError("start: \"\(start)\" is not a time of day like 09:00 (00:00 to 23:59)")
        }
        guard let e = Self.minutes(end) else {
            throw SendWindowError("end: \"\(end)\" is not a time of day like 18:00 (00:00 to 23:59)")
        }
        guard s != e else { throw SendWindowError("end: must differ from start (\(start))") }
        guard let zone = TimeZone(identifier: timeZone) else {
            throw SendWindowError("time_zone: \"\(timeZone)\" is not a known IANA time zone (e.g. Europe/Paris)")
        }
        var weekdays: Set<Int>?
        if let days {
            guard !days.isEmpty else { throw SendWindowError("days: give at least one day, or leave it out for every day") }
            var set = Set<Int>()
            for day in days {
                guard let index = Self.dayNames.firstIndex(of: day.lowercased()) else {
                    throw SendWindowError("days: \"\(day)\" is not one of mon, tue, wed, thu, fri, sat, sun")
                }
                set.insert(index + 1)
            }
            weekdays = set
        }
        self.start = start
        self.end = end
        self.timeZone = timeZone
        self.days = days?.map { $0.lowercased() }
        self.startMinute = s
        self.endMinute = e
        self.zone = zone
        self.weekdays = weekdays
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        do {
            try self.init(start: try c.decode(String.self, forKey: .start), end: try c.decode(String.self, forKey: .end),
                          timeZone: try c.decode(String.self, forKey: .timeZone),
                          days: try c.decodeIfPresent([String].self, forKey: .days))
        } catch let error as SendWindowError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(start, forKey: .start)
        try c.encode(end, forKey: .end)
        try c.encode(timeZone, forKey: .timeZone)
        try c.encodeIfPresent(days, forKey: .days)
    }

    public static func == (a: SendWindow, b: SendWindow) -> Bool {
        a.start == b.start && a.end == b.end && a.timeZone == b.timeZone && a.days == b.days
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(start)
        hasher.combine(end)
        hasher.combine(timeZone)
        hasher.combine(days)
    }

    /// Minutes after midnight of `"HH:MM"`, or nil.
    static func minutes(_ text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2,
              let h = Int(parts[0]), let m = Int(parts[1]), (0..<24).contains(h), (0..<60).contains(m)
        else { return nil }
        return h * 60 + m
    }
}
