import Foundation
import Rendering
import Spool

/// A campaign's daily send window (`"send_window"` of a campaign), as the API takes it:
/// `{"start": "09:00", "end": "18:00", "time_zone": "Europe/Paris", "days": ["mon", …],
/// "recipient_time_zone": true}`.
///
/// - `time_zone` defaults to the campaign's own zone (the one `schedule` was given, UTC
///   before that).
/// - With `recipient_time_zone`, a subscriber whose attributes hold a valid IANA zone
///   under `time_zone` (or `timezone`) gets the window in that zone instead: 09:00 in
///   Tokyo for one, 09:00 in Paris for another.
/// The window is written into each message's envelope (``SendPolicy``) at expansion and
/// honoured by the delivery queue manager, which holds a message back, without counting
/// an attempt, while its window is closed. Messages already being delivered when the
/// window closes finish.
public struct CampaignSendWindow: Sendable, Equatable, Codable {
    public var start: String
    public var end: String
    public var timeZone: String?
    public var days: [String]?
    public var recipientTimeZone: Bool

    enum CodingKeys: String, CodingKey {
        case start, end, time_zone, days, recipient_time_zone
    }

    public init(start: String, end: String, timeZone: String? = nil, days: [String]? = nil,
                recipientTimeZone: Bool = false) {
        self.start = start
        self.end = end
        self.timeZone = timeZone
        self.days = days
        self.recipientTimeZone = recipientTimeZone
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        start = try c.decode(String.self, forKey: .start)
        end = try c.decode(String.self, forKey: .end)
        timeZone = try c.decodeIfPresent(String.self, forKey: .time_zone)
        days = try c.decodeIfPresent([String].self, forKey: .days)
        recipientTimeZone = try c.decodeIfPresent(Bool.self, forKey: .recipient_time_zone) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(start, forKey: .start)
        try c.encode(end, forKey: .end)
        try c.encode(timeZone, forKey: .time_zone)
        try c.encode(days, forKey: .days)
        try c.encode(recipientTimeZone, forKey: .recipient_time_zone)
    }

    init(jsonText: String) throws {
        self = try JSONDecoder().decode(CampaignSendWindow.self, from: Data(jsonText.utf8))
    }

    var jsonText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// A ``StoreError`` `.invalid` naming the field (`send_window.start: …`) when the window is not valid.
    func validate() throws {
        do {
            _ = try SendWindow(start: start, end: end, timeZone: timeZone ?? "UTC", days: days)
        } catch {
            throw StoreError(.invalid, "send_window.\(error.message)")
        }
    }

    /// The window for one recipient: in the subscriber's own zone when asked for and
    /// valid, else in `time_zone`, else in the campaign's zone.
    public func window(campaignZone: String, attributes: [String: TemplateValue]) -> SendWindow? {
        var zone = timeZone ?? campaignZone
        if recipientTimeZone {
            for key in ["time_zone", "timezone"] {
                if case .string(let name)? = attributes[key], TimeZone(identifier: name) != nil {
                    zone = name
                    break
                }
            }
        }
        return try? SendWindow(start: start, end: end, timeZone: zone, days: days)
    }

    /// `send_rate` in the spool's ``Rate`` grammar (`N/s`, `N/m`, `N/h` or `N/d`, N > 0),
    /// at most a million per unit.
    static func validateRate(_ text: String) throws {
        guard let rate = Rate(text), rate.count <= 1_000_000 else {
            throw StoreError(.invalid, "send_rate: \"\(text)\" is not a rate like 100/m (per s, m, h or d)")
        }
    }
}
