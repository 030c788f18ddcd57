import Foundation
import Postgres

/// When a scheduled campaign starts: `send_at` (UTC), the IANA zone it was given in, and
/// an optional deadline after which a campaign that could not start is `expired`.
public struct CampaignSchedule: Sendable, Equatable {
    public var sendAt: Date?
    public var timeZone: String
    public var deadline: Date?
}

/// A campaign that is due (``CampaignStore/dueCampaigns(now:)``).
public struct DueCampaign: Sendable, Equatable {
    public var id: Int64
    public var tenant: TenantID
}

extension CampaignStore {
    /// Parses `2026-12-01T09:00[:00[.fff]]` as a wall-clock time in `zone`, or, with a `Z`
    /// or `±hh:mm` suffix, as that absolute instant. nil when it is not such a string.
    public static func parseLocalTime(_ text: String, in zone: TimeZone) -> Date? {
        let scalars = Array(text.utf8)
        var i = 0
        func number(_ digits: Int) -> Int? {
            guard i + digits <= scalars.count else { return nil }
            var n = 0
            for k in i..<(i + digits) {
                let c = scalars[k]
                guard c >= 48 && c <= 57 else { return nil }
                n = n * 10 + Int(c - 48)
            }
            i += digits
            return n
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < scalars.count, scalars[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect(UInt8(ascii: "-")), let month = number(2), expect(UInt8(ascii: "-")),
              let day = number(2), expect(UInt8(ascii: "T")) || expect(UInt8(ascii: " ")),
              let hour = number(2), expect(UInt8(ascii: ":")), let minute = number(2)
        else { return nil }
        var second = 0
        var fraction = 0.0
        if expect(UInt8(ascii: ":")) {
            guard let s = number(2) else { return nil }
            second = s
            if expect(UInt8(ascii: ".")) {
                var scale = 0.1
                var any = false
                while i < scalars.count, scalars[i] >= 48 && scalars[i] <= 57 {
                    fraction += Double(scalars[i] - 48) * scale
                    scale /= 10
                    i += 1
                    any = true
                }
                guard any else { return nil }
            }
        }
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60 else { return nil }
        var offset: Int?
        if expect(UInt8(ascii: "Z")) || expect(UInt8(ascii: "z")) {
            offset = 0
        } else if i < scalars.count, scalars[i] == UInt8(ascii: "+") || scalars[i] == UInt8(ascii: "-") {
            let sign = scalars[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let h = number(2) else { return nil }
            _ = expect(UInt8(ascii: ":"))
            guard let m = number(2), h < 24, m < 60 else { return nil }
            offset = sign * (h * 3600 + m * 60)
        }
        guard i == scalars.count else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = offset.flatMap { TimeZone(secondsFromGMT: $0) } ?? zone
        let components = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute,
                                        second: second)
        guard let date = calendar.date(from: components) else { return nil }
        // Reject dates the calendar rolled over (2026-02-31).
        let back = calendar.dateComponents([.year, .month, .day], from: date)
        guard back.year == year, back.month == month, back.day == day else { return nil }
        return date.addingTimeInterval(fraction)
    }

    /// `draft` (or `scheduled`, to reschedule) → `scheduled` at `sendAt`, in zone
    /// `timeZone` (already validated), with an optional deadline. nil when there is no
    /// such campaign; `.conflict` from any other state; `.invalid` when the deadline is
    /// not after `send_at` or already past.
    public func schedule(tenant: TenantID, id: Int64, sendAt: Date, timeZone: String, deadline: Date?,
                         now: Date = Date()) async throws -> (Campaign, CampaignSchedule)? {
        if let deadline {
            guard deadline > sendAt else {
                throw StoreError(.invalid, "deadline: must be after send_at")
            }
            guard deadline > now else {
                throw StoreError(.invalid, "deadline: \(PGText.timestamp(deadline)) is already past")
            }
        }
        guard let current = try await campaign(tenant: tenant, id: id) else { return nil }
        guard current.status == .draft || current.status == .scheduled else {
            throw StoreError(.conflict, "campaign \(id) is \(current.status.rawValue); only a draft can be scheduled")
        }
        guard !current.listIDs.isEmpty else {
            throw StoreError(.invalid, "list_ids: the campaign has no lists to send to")
        }
        guard let row = try await db.query("""
            UPDATE campaigns AS c SET status = 'scheduled', send_at = $3::timestamptz, time_zone = $4,
                deadline = $5::timestamptz, updated_at = now()
            WHERE c.tenant_id = $1 AND c.id = $2 AND c.status IN ('draft', 'scheduled')
            RETURNING \(Self.columns)
            """, [tenant.parameter, String(id), PGText.timestamp(sendAt), timeZone,
                  deadline.map(PGText.timestamp)]).first
        else {
            throw StoreError(.conflict, "campaign \(id) is no longer a draft; only a draft can be scheduled")
        }
        return (try Self.campaign(row), CampaignSchedule(sendAt: sendAt, timeZone: timeZone, deadline: deadline))
    }

    /// The campaign's schedule columns (nil: no such campaign for the tenant).
    public func schedule(tenant: TenantID, id: Int64) async throws -> CampaignSchedule? {
        try await db.query("SELECT send_at, time_zone, deadline FROM campaigns WHERE tenant_id = $1 AND id = $2",
                           [tenant.parameter, String(id)]).first.map {
            CampaignSchedule(sendAt: PGText.timestamp($0[0]), timeZone: try PGText.require($0, 1),
                             deadline: PGText.timestamp($0[2]))
        }
    }

    /// `scheduled` → `expired` for every campaign whose deadline is at or before `now`
    /// (it could not start in time; it is never sent late). Returns their ids.
    public func expireOverdue(now: Date) async throws -> [Int64] {
        try await db.query("""
            UPDATE campaigns SET status = 'expired', finished_at = now(), updated_at = now()
            WHERE status = 'scheduled' AND deadline IS NOT NULL AND deadline <= $1::timestamptz
            RETURNING id
            """, [PGText.timestamp(now)]).map { try PGText.require($0, 0, PGText.int64) }.sorted()
    }

    /// Scheduled campaigns whose `send_at` has come and whose deadline (if any) has not
    /// passed, oldest first.
    public func dueCampaigns(now: Date, limit: Int = 100) async throws -> [DueCampaign] {
        try await db.query("""
            SELECT id, tenant_id FROM campaigns
            WHERE status = 'scheduled' AND send_at <= $1::timestamptz
              AND (deadline IS NULL OR deadline > $1::timestamptz)
            ORDER BY send_at, id LIMIT $2
            """, [PGText.timestamp(now), String(limit)]).map {
            DueCampaign(id: try PGText.require($0, 0, PGText.int64), tenant: TenantID(try PGText.require($0, 1, PGText.int64)))
        }
    }

    /// The earliest `send_at` or deadline among scheduled campaigns (when the scheduler
    /// next has something to do), or nil.
    public func nextScheduledEvent() async throws -> Date? {
        try await db.query("""
            SELECT least(min(send_at), min(deadline)) FROM campaigns WHERE status = 'scheduled'
            """).first.flatMap { PGText.timestamp($0[0]) }
    }

    /// A new draft with the campaign's content, named `<name> (copy)`. nil when there is
    /// no such campaign for the tenant.
    public func duplicate(tenant: TenantID, id: Int64) async throws -> Campaign? {
        guard let source = try await campaign(tenant: tenant, id: id) else { return nil }
        let name = source.name.count > 493 ? String(source.name.prefix(493)) + " (copy)" : source.name + " (copy)"
        let tenantParameter = tenant.parameter
        return try await db.transaction { connection in
            // Lists deleted since are dropped from the copy rather than failing it.
            let lists = Set(try connection.query(
                "SELECT id FROM lists WHERE tenant_id = $1 AND id = ANY ($2::bigint[])",
                [tenantParameter, PGText.array(source.listIDs)]).rows.map { try PGText.require($0, 0, PGText.int64) })
            let row = try connection.query("""
                INSERT INTO campaigns AS c (tenant_id, name, from_address, reply_to, subject, html, text, list_ids,
                                            segment, segment_path, send_rate, send_window, time_zone,
                                            max_attempts, track_opens, track_clicks)
                SELECT tenant_id, $3, from_address, reply_to, subject, html, text, $4::bigint[], segment,
                       segment_path, send_rate, send_window, time_zone, max_attempts, track_opens, track_clicks
                FROM campaigns WHERE tenant_id = $1 AND id = $2
                RETURNING \(Self.columns)
                """, [tenantParameter, String(id), name,
                      PGText.array(source.listIDs.filter { lists.contains($0) })]).rows[0]
            return try Self.campaign(row)
        }
    }
}
