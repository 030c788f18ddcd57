import CampaignStore
import Foundation
import HTTPAPI
import Logging
import SMTPServer
import Synchronization

/// The SMTP AUTH users of this node: the config's `[[user]]` tables first, then the
/// users tenants make over the API (``SMTPUserStore``, in PostgreSQL).
///
/// - Precedence. A name the config holds, ignoring case, is the config's: a database
///   user of that name never authenticates on this node (the API refuses to make one
///   while the config has it, but a `[[user]]` added later wins). Config users are
///   checked as ``StaticUserAuthenticator`` always did.
/// - Lookups. A database user's credentials are read when a client names it and kept
///   for `ttl` (2 s), found or not; the HTTP routes of this node forget a name at once
///   when they create, delete or re-key it. So a user deleted on this node stops
///   authenticating at once, and one deleted on another node within `ttl`. Names are
///   compared as sent, like the config's (the database also refuses two names that
///   differ only in case).
/// - Timing. An unknown name costs a hash check like a known one (against the dummy hash
///   of ``StaticUserAuthenticator``), and both answer with the same `535 5.7.8`: a
///   failed AUTH does not tell whether the name exists. Hash checks and database reads
///   run in `verify`, which the session handler calls off the event loop.
/// - Outage. When PostgreSQL cannot be read, the last credentials this node read for
///   the name are used (however old); a name it never read cannot authenticate until
///   the database is back.
/// - Tenants. A database user's mail is tagged with its tenant's id, the tag of its
///   tenant's API mail (``TenantDirectory``), as found by the AUTH that let the session
///   in: a session keeps its tenant even if the user is deleted meanwhile.
public final class SMTPUserDirectory: SMTPAuthenticator, SMTPUserAccounts {
    struct Entry {
        var credentials: SMTPUserCredentials?
        var read: ContinuousClock.Instant
        var markedUsed: ContinuousClock.Instant?
    }

    struct State {
        /// What was read per name, found or not.
        var cache: [String: Entry] = [:]
        /// The tenant each database user had at its last successful AUTH here: one entry
        /// per user that ever authenticated on this node.
        var authenticated: [String: TenantID] = [:]
    }

    let config: StaticUserAuthenticator
    /// The `[[user]]` names in lower case: they always win over a database user.
    let configNames: Set<String>
    let store: SMTPUserStore?
    let ttl: Duration
    let logger: Logger
    private let state = Mutex(State())
    /// Cache entries kept before expired ones are dropped.
    static let maxEntries = 10_000
    /// How often a node records a user's `last_used_at`, at most.
    static let markInterval = Duration.seconds(60)

    public init(configUsers: [String: String], store: SMTPUserStore?, ttl: Duration = .seconds(2), logger: Logger) {
        self.config = StaticUserAuthenticator(users: configUsers)
        self.configNames = Set(configUsers.keys.map { $0.lowercased() })
        self.store = store
        self.ttl = ttl
        self.logger = logger
    }

    public var hasUsers: Bool { config.hasUsers || store != nil }

    public func verify(username: String, password: String) async -> Bool {
        guard !isConfigUser(username), store != nil, let credentials = await credentials(username) else {
            // A config user, or nobody: for an unknown name the config check spends the
            // same effort on the dummy hash.
            return await config.verify(username: username, password: password)
        }
        guard PasswordHash.verify(password: password, against: credentials.passwordHash) else { return false }
        state.withLock { $0.authenticated[username] = credentials.tenant }
        markUsed(username)
        return true
    }

    /// The tenant of the database user `username`: the one its last AUTH here found,
    /// else read now; nil for a config user or nobody.
    public func tenant(ofUser username: String) async -> TenantID? {
        guard !isConfigUser(username), store != nil else { return nil }
        if let known = knownTenant(ofUser: username) { return known }
        return await credentials(username)?.tenant
    }

    /// The tenant of the database user `username` from what this node knows, without waiting.
    public func knownTenant(ofUser username: String) -> TenantID? {
        guard !isConfigUser(username) else { return nil }
        return state.withLock { $0.authenticated[username] ?? $0.cache[username]?.credentials?.tenant }
    }

    /// A name the config holds, ignoring case.
    public func isConfigUser(_ username: String) -> Bool {
        configNames.contains(username.lowercased())
    }

    public func passwordHash(for password: String) -> String {
        PasswordHash.make(password: password)
    }

    /// Forgets what was read about `username`, so its next AUTH reads the database.
    public func changed(_ username: String) {
        _ = state.withLock { $0.cache.removeValue(forKey: username) }
    }

    func credentials(_ username: String) async -> SMTPUserCredentials? {
        guard let store else { return nil }
        let now = ContinuousClock.now
        let cached = state.withLock { $0.cache[username] }
        if let cached, now - cached.read < ttl { return cached.credentials }
        do {
            let read = try await store.credentials(username: username)
            state.withLock { s in
                if s.cache.count >= Self.maxEntries { s.cache = s.cache.filter { now - $0.value.read < ttl } }
                s.cache[username] = Entry(credentials: read, read: now, markedUsed: s.cache[username]?.markedUsed)
            }
            return read
        } catch {
            logger.warning("cannot read SMTP users from the database; using what this node read last",
                           metadata: ["user": "\(username)", "error": "\(error)"])
            return cached?.credentials
        }
    }

    /// Records the user's `last_used_at`, at most once per `markInterval` from this node,
    /// without holding up the AUTH reply.
    func markUsed(_ username: String) {
        guard let store else { return }
        let now = ContinuousClock.now
        let due = state.withLock { s -> Bool in
            guard var entry = s.cache[username] else { return false }
            if let last = entry.markedUsed, now - last < Self.markInterval { return false }
            entry.markedUsed = now
            s.cache[username] = entry
            return true
        }
        guard due else { return }
        let logger = self.logger
        Task {
            do {
                try await store.markUsed(username: username)
            } catch {
                logger.debug("cannot record an SMTP user's last use", metadata: ["user": "\(username)", "error": "\(error)"])
            }
        }
    }
}
