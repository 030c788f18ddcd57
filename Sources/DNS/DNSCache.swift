/// How long ``CAresResolver`` keeps answers.
///
/// Positive answers live for their TTL (the smallest TTL of the records used, CNAMEs
/// included), capped by `maximumTTL`; a TTL of 0 is not cached. Negative answers
/// (NXDOMAIN, NODATA) live for the SOA's negative TTL when the server sends one (RFC 2308:
/// the smaller of the SOA record's TTL and its MINIMUM field), `negativeTTL` otherwise,
/// capped by `maximumNegativeTTL`. Temporary failures (SERVFAIL, time-outs) are kept for
/// `temporaryFailureTTL`, by default not at all: the queue manager's retry schedule
/// decides when to ask again, and concurrent identical questions share one query anyway.
public struct DNSCachePolicy: Hashable, Sendable {
    public var maximumTTL: Duration
    public var negativeTTL: Duration
    public var maximumNegativeTTL: Duration
    public var temporaryFailureTTL: Duration
    /// Above this many entries, expired ones are dropped, then arbitrary ones.
    public var maximumEntries: Int

    public init(
        maximumTTL: Duration = .seconds(86_400),
        negativeTTL: Duration = .seconds(60),
        maximumNegativeTTL: Duration = .seconds(3_600),
        temporaryFailureTTL: Duration = .zero,
        maximumEntries: Int = 100_000
    ) {
        self.maximumTTL = maximumTTL
        self.negativeTTL = negativeTTL
        self.maximumNegativeTTL = maximumNegativeTTL
        self.temporaryFailureTTL = temporaryFailureTTL
        self.maximumEntries = maximumEntries
    }

    /// Nothing is cached (every question goes to the server).
    public static let disabled = DNSCachePolicy(
        maximumTTL: .zero, negativeTTL: .zero, maximumNegativeTTL: .zero, temporaryFailureTTL: .zero)

    /// How long to keep `answer`, given the TTL the server sent (nil if none applied).
    func lifetime(of answer: QueryAnswer, ttl: Duration?) -> Duration {
        switch answer {
        case .mx, .addresses:
            return min(ttl ?? .zero, self.maximumTTL)
        case .noSuchDomain, .noData, .invalidName:
            return min(ttl ?? self.negativeTTL, self.maximumNegativeTTL)
        case .temporary:
            return self.temporaryFailureTTL
        }
    }
}

/// Answers by question, each with its expiry time. Times are durations on the
/// resolver's clock (measured from its creation), so any `Clock` can drive it.
/// Not thread-safe: the resolver keeps it inside its lock.
struct DNSCache {
    private struct Entry {
        var answer: QueryAnswer
        var expires: Duration
    }

    private var entries: [QueryKey: Entry] = [:]
    let policy: DNSCachePolicy

    init(policy: DNSCachePolicy) {
        self.policy = policy
    }

    var count: Int { self.entries.count }

    /// The cached answer if it has not expired; an expired entry is removed.
    mutating func lookup(_ key: QueryKey, now: Duration) -> QueryAnswer? {
        guard let entry = self.entries[key] else { return nil }
        if entry.expires > now {
            return entry.answer
        }
        self.entries[key] = nil
        return nil
    }

    /// Stores `answer` for its lifetime under the policy (nothing if that is zero).
    mutating func insert(_ key: QueryKey, _ answer: QueryAnswer, ttl: Duration?, now: Duration) {
        let lifetime = self.policy.lifetime(of: answer, ttl: ttl)
        guard lifetime > .zero, self.policy.maximumEntries > 0 else {
            self.entries[key] = nil
            return
        }
        if self.entries[key] == nil, self.entries.count >= self.policy.maximumEntries {
            self.makeRoom(now: now)
        }
        self.entries[key] = Entry(answer: answer, expires: now + lifetime)
    }

    mutating func removeAll() {
        self.entries.removeAll()
    }

    private mutating func makeRoom(now: Duration) {
        self.entries = self.entries.filter { $0.value.expires > now }
        let target = self.policy.maximumEntries - max(1, self.policy.maximumEntries / 10)
        if self.entries.count > target {
            // Dictionary order is arbitrary enough for an emergency eviction.
            for key in Array(self.entries.keys.prefix(self.entries.count - target)) {
                self.entries[key] = nil
            }
        }
    }
}
