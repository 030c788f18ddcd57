import Foundation
import Postgres
import Spool

/// A database tenant's limits. The operator sets them (`herald tenant limits NAME …`);
/// the tenant reads them (`GET /v1/tenant/limits`) but cannot change them.
///
/// - `rate` and `maxConnections` are delivery limits: the queue manager of every node
///   applies them to the tenant's mail (a pacing stage, and attempts in flight).
/// - `quota` (`"1000/h"`, a window of one hour or one day) and `dailyQuota` (N per 24
///   hours) are submission quotas over sliding windows: every way mail enters (SMTP
///   AUTH users of the tenant, `POST /v1/messages`, campaign sends and their expansion,
///   test sends) counts against them, one per recipient, before the mail is spooled.
public struct TenantLimits: Sendable, Equatable {
    public var rate: Rate?
    public var maxConnections: Int?
    public var quota: Rate?
    public var dailyQuota: Int?

    public init(rate: Rate? = nil, maxConnections: Int? = nil, quota: Rate? = nil, dailyQuota: Int? = nil) {
        self.rate = rate
        self.maxConnections = maxConnections
        self.quota = quota
        self.dailyQuota = dailyQuota
    }

    public var isEmpty: Bool { self == TenantLimits() }

    /// The sliding windows the quotas make (none without a quota).
    public var quotaWindows: [QuotaWindow] {
        var windows: [QuotaWindow] = []
        if let q = quota { windows.append(QuotaWindow(limit: Int(q.count), seconds: Int(q.per))) }
        if let d = dailyQuota { windows.append(QuotaWindow(limit: d, seconds: 86400)) }
        return windows
    }

    /// Checks each limit (the messages name the CLI option and the form it wants).
    public func validated() throws(StoreError) -> TenantLimits {
        if let c = maxConnections, !(1...10_000).contains(c) {
            throw StoreError(.invalid, "max connections: 1 to 10000, not \(c)")
        }
        if let q = quota {
            guard q.per == 3600 || q.per == 86400, q.count == q.count.rounded(), (1...1_000_000_000).contains(q.count)
            else { throw StoreError(.invalid, "quota: a whole number of messages per hour or per day, e.g. 1000/h") }
        }
        if let d = dailyQuota, !(1...1_000_000_000).contains(d) {
            throw StoreError(.invalid, "daily quota: 1 to 1000000000 messages, not \(d)")
        }
        return self
    }
}

/// One sliding window of a quota: at most `limit` messages in any `seconds`.
public struct QuotaWindow: Sendable, Equatable, CustomStringConvertible {
    public var limit: Int
    public var seconds: Int

    public init(limit: Int, seconds: Int) {
        self.limit = limit
        self.seconds = seconds
    }

    /// `1000 messages per hour`.
    public var description: String {
        let span = seconds == 3600 ? "hour" : seconds == 86400 ? "day" : "\(seconds) seconds"
        return "\(limit) message\(limit == 1 ? "" : "s") per \(span)"
    }
}

/// What ``TenantLimitsStore/reserve(tenant:count:partial:now:)`` decided.
public struct QuotaDecision: Sendable, Equatable {
    /// Messages counted against the quota now (all of `requested`, or with `partial` as
    /// many as fit; 0 when refused).
    public var granted: Int
    public var requested: Int
    /// When refused: the earliest time the request (with `partial`, one message) fits;
    /// nil when it never can (more recipients than the window's whole limit).
    public var retryAt: Date?
    /// The window that refused, for the message to the client.
    public var window: QuotaWindow?
    /// The minute the grant was counted in (``TenantLimitsStore/release(tenant:count:minute:)``).
    public var minute: Int64
    /// Whether `granted` was counted (false without a quota, or in a dry run): only a
    /// counted grant is given back.
    public var counted = false

    public var allowed: Bool { granted == requested }

    /// Whole seconds from `now` to `retryAt` (at least 1), for `Retry-After`.
    public func retryAfter(now: Date = Date()) -> Int? {
        retryAt.map { max(1, Int(($0.timeIntervalSince(now)).rounded(.up))) }
    }
}

extension QuotaDecision {
    /// What a refused client is told, the same over SMTP and HTTP: which quota, and
    /// when to try again (or that the request can never fit as it is).
    public func explanation(now: Date = Date()) -> String {
        guard let window else { return "the tenant's quota is used up" }
        guard let seconds = retryAfter(now: now) else {
            return "\(requested) recipients are more than the tenant's quota of \(window) allows at once; "
                + "send them in smaller parts"
        }
        return "the tenant's quota of \(window) is used up; try again in \(seconds) seconds"
    }
}

/// How much of one window a tenant has used.
public struct QuotaUsage: Sendable, Equatable {
    public var window: QuotaWindow
    public var used: Int
    public var remaining: Int { max(0, window.limit - used) }
}

/// Tenant limits and the submission quotas' counters, in PostgreSQL so that every node
/// counts against one quota.
///
/// Counting: one row per tenant and minute (`tenant_usage`); a window of W seconds sums
/// the last W/60 minutes, the current one included, so a message leaves the window
/// between W − 60 and W seconds after it was counted: the window errs by at most one
/// minute, towards letting mail through a little early, never late. A reservation locks
/// the tenant's `tenant_limits` row (`FOR UPDATE`), so concurrent submissions on any
/// node are counted one after the other and never overshoot together. Mail of a tenant
/// without a quota is not counted at all (no database write on its path); a quota set
/// later starts from zero.
public struct TenantLimitsStore: Sendable {
    public let db: PostgresClient

    public init(_ db: PostgresClient) { self.db = db }

    /// A tenant, with its limits (empty when none are set).
    public struct Entry: Sendable, Equatable {
        public var tenant: TenantID
        public var name: String
        public var limits: TenantLimits
    }

    static func minute(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 / 60).rounded(.down)) }

    /// The tenant's limits (empty when none are set).
    public func limits(tenant: TenantID) async throws -> TenantLimits {
        try await db.query("SELECT rate, max_connections, quota, daily_quota FROM tenant_limits WHERE tenant_id = $1",
                           [tenant.parameter]).first.map(Self.limits) ?? TenantLimits()
    }

    /// Replaces the tenant's limits (all of them: nil removes one).
    public func setLimits(tenant: TenantID, _ limits: TenantLimits) async throws {
        let l = try limits.validated()
        try await db.execute("""
            INSERT INTO tenant_limits (tenant_id, rate, max_connections, quota, daily_quota) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (tenant_id) DO UPDATE SET rate = $2, max_connections = $3, quota = $4, daily_quota = $5,
                                                  updated_at = now()
            """, [tenant.parameter, l.rate?.text, l.maxConnections.map(String.init), l.quota?.text,
                  l.dailyQuota.map(String.init)])
    }

    /// Every tenant, with its limits: what each node's tenant directory keeps.
    public func all() async throws -> [Entry] {
        try await db.query("""
            SELECT t.id, t.name, l.rate, l.max_connections, l.quota, l.daily_quota
            FROM tenants t LEFT JOIN tenant_limits l ON l.tenant_id = t.id ORDER BY t.id
            """).map { row in
            Entry(tenant: TenantID(try PGText.require(row, 0, PGText.int64)), name: try PGText.require(row, 1),
                  limits: try Self.limits(Array(row.dropFirst(2))))
        }
    }

    /// Counts `count` messages against the tenant's quotas at `now`, if every window has
    /// room for them; with `partial`, as many as fit. Without a quota, all are granted
    /// and nothing is counted.
    /// With `dryRun`, nothing is counted: the answer says what a reservation would get.
    public func reserve(tenant: TenantID, count: Int, partial: Bool = false, dryRun: Bool = false,
                        now: Date = Date()) async throws -> QuotaDecision
    {
        let minute = Self.minute(now)
        return try await db.transaction { c in
            guard let row = try c.query("""
                SELECT rate, max_connections, quota, daily_quota FROM tenant_limits WHERE tenant_id = $1
                \(dryRun ? "" : "FOR UPDATE")
                """, [tenant.parameter]).rows.first else {
                return QuotaDecision(granted: count, requested: count, minute: minute)
            }
            let windows = try Self.limits(row).quotaWindows
            guard !windows.isEmpty, count > 0 else { return QuotaDecision(granted: count, requested: count, minute: minute) }
            let longest = Int64(windows.map(\.seconds).max()! / 60)
            let buckets = try c.query("""
                SELECT minute, messages FROM tenant_usage WHERE tenant_id = $1 AND minute > $2 ORDER BY minute
                """, [tenant.parameter, String(minute - longest)]).rows.map {
                (minute: try PGText.require($0, 0, PGText.int64), messages: try PGText.require($0, 1, PGText.int))
            }
            var decision = Self.decide(count: count, partial: partial, windows: windows, buckets: buckets, minute: minute)
            if decision.granted > 0 && !dryRun {
                try c.execute("""
                    INSERT INTO tenant_usage (tenant_id, minute, messages) VALUES ($1, $2, $3)
                    ON CONFLICT (tenant_id, minute) DO UPDATE SET messages = tenant_usage.messages + $3
                    """, [tenant.parameter, String(minute), String(decision.granted)])
                decision.counted = true
            }
            decision.minute = minute
            return decision
        }
    }

    /// The decision for `count` messages in the current `minute`, given the counted
    /// `buckets` (oldest first): see ``reserve(tenant:count:partial:now:)``.
    static func decide(count: Int, partial: Bool, windows: [QuotaWindow], buckets: [(minute: Int64, messages: Int)],
                       minute: Int64) -> QuotaDecision {
        var granted = count
        var refusing: [(QuotaWindow, [(minute: Int64, messages: Int)], Int)] = []
        for w in windows {
            let span = Int64(w.seconds / 60)
            let inside = buckets.filter { $0.minute > minute - span }
            let used = inside.reduce(0) { $0 + $1.messages }
            let room = max(0, w.limit - used)
            let fits = partial ? min(room, count) : (count <= room ? count : 0)
            granted = min(granted, fits)
            if fits < count { refusing.append((w, inside, used)) }
        }
        var decision = QuotaDecision(granted: granted, requested: count, minute: minute)
        guard granted < count, !(partial && granted > 0) else { return decision }
        // When does the request fit? Each refusing window must shed enough of its oldest
        // minutes; a minute counted in bucket b leaves a window of span S at (b + S) × 60.
        let need = partial ? 1 : count
        var latest: Date? = .distantPast
        for (w, inside, used) in refusing {
            let excess = used + need - w.limit
            guard excess > 0 else { continue }   // room for `need` here: another window refuses
            decision.window = decision.window ?? w
            guard need <= w.limit else {
                latest = nil
                decision.window = w
                break
            }
            var shed = 0
            for b in inside {
                shed += b.messages
                if shed >= excess {
                    let at = Date(timeIntervalSince1970: Double((b.minute + Int64(w.seconds / 60)) * 60))
                    if at > latest! {
                        latest = at
                        decision.window = w
                    }
                    break
                }
            }
        }
        decision.retryAt = latest
        return decision
    }

    /// Gives back messages counted by a reservation whose mail was not spooled after all.
    public func release(tenant: TenantID, count: Int, minute: Int64) async throws {
        guard count > 0 else { return }
        try await db.execute("""
            UPDATE tenant_usage SET messages = greatest(0, messages - $3) WHERE tenant_id = $1 AND minute = $2
            """, [tenant.parameter, String(minute), String(count)])
    }

    /// The tenant's use of each window of its quotas at `now`.
    public func usage(tenant: TenantID, limits: TenantLimits, now: Date = Date()) async throws -> [QuotaUsage] {
        let windows = limits.quotaWindows
        guard let longest = windows.map(\.seconds).max() else { return [] }
        let minute = Self.minute(now)
        let buckets = try await db.query("""
            SELECT minute, messages FROM tenant_usage WHERE tenant_id = $1 AND minute > $2
            """, [tenant.parameter, String(minute - Int64(longest / 60))]).map {
            (minute: try PGText.require($0, 0, PGText.int64), messages: try PGText.require($0, 1, PGText.int))
        }
        return windows.map { w in
            QuotaUsage(window: w, used: buckets.filter { $0.minute > minute - Int64(w.seconds / 60) }
                .reduce(0) { $0 + $1.messages })
        }
    }

    /// Forgets counts older than any window (a day) can reach.
    public func prune(now: Date = Date()) async throws {
        try await db.execute("DELETE FROM tenant_usage WHERE minute <= $1", [String(Self.minute(now) - 1440)])
    }

    static func limits(_ row: [String?]) throws -> TenantLimits {
        func rate(_ i: Int) throws -> Rate? {
            try PGText.optional(row, i, { Rate($0) }, as: "a rate")
        }
        return TenantLimits(rate: try rate(0), maxConnections: PGText.int(row[1]), quota: try rate(2),
                            dailyQuota: PGText.int(row[3]))
    }
}
