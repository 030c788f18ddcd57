import CampaignStore
import Delivery
import Foundation
import Logging
import ServiceLifecycle
import SMTPCore
import SMTPServer
import Synchronization

/// This node's view of the tenants: which tenant each SMTP AUTH user's mail belongs to,
/// the database tenants' names and limits, and the submission quota of SMTP mail.
///
/// - Database users. A user made over the API (``SMTPUserDirectory``) belongs to one
///   database tenant: its mail is tagged with that tenant's id.
/// - Envelope tags. A user's `[[user]] tenant = "NAME"` tags its mail with the id of the
///   database tenant named NAME (ignoring case) when there is one, else with NAME: the
///   same tags `POST /v1/messages` writes for a database key (the id) and a config-file
///   key (the name), so delivery events, the delivery log and `herald queue --tenant`
///   find SMTP mail of a tenant the same way as its API mail.
/// - Limits. Every `interval` (and at start-up, before any listener opens) the tenants
///   and their limits are read from PostgreSQL and handed to the queue manager, so a
///   change made with `herald tenant limits` on any node holds everywhere within that
///   time. The names let `[[throttle]] match = "tenant:NAME"` find a database tenant's
///   mail, which is tagged with its id.
/// - Quota. An SMTP message of a tenant with a quota is counted (one per recipient) in
///   PostgreSQL before it is spooled; over the quota it is refused with `452 4.7.1`, and
///   until the window has room again this node answers the tenant's users' RCPT with
///   the same reply, without asking the database. When PostgreSQL cannot be reached
///   the message is accepted and the failure logged: the spool, not the database,
///   acknowledges SMTP mail.
public final class TenantDirectory: SubmissionTenants, Service {
    struct State {
        var byName: [String: TenantLimitsStore.Entry] = [:]
        var byID: [Int64: TenantLimitsStore.Entry] = [:]
        var loaded = Date.distantPast
        var pruned = Date.distantPast
        /// Tenants (by tag) known to be over their quota: the decision and until when.
        var overQuota: [String: (decision: QuotaDecision, until: Date)] = [:]
    }

    let store: TenantLimitsStore?
    /// `[[user]]` name → tenant name.
    let users: [String: String]
    /// The users tenants made over the API: their mail is tagged with their tenant's id.
    let databaseUsers: SMTPUserDirectory?
    let queueManager: QueueManager?
    let interval: Duration
    let logger: Logger
    private let state = Mutex(State())

    public init(store: TenantLimitsStore?, users: [String: String], databaseUsers: SMTPUserDirectory? = nil,
                queueManager: QueueManager?, interval: Duration = .seconds(2), logger: Logger) {
        self.store = store
        self.users = users
        self.databaseUsers = databaseUsers
        self.queueManager = queueManager
        self.interval = interval
        self.logger = logger
    }

    /// Reads the tenants and their limits, and hands the delivery limits to the queue manager.
    public func refresh() async {
        guard let store else { return }
        let entries: [TenantLimitsStore.Entry]
        do {
            entries = try await store.all()
            // Counts older than a day, once a minute.
            let now = Date()
            if state.withLock({ now.timeIntervalSince($0.pruned) >= 60 }) {
                try await store.prune(now: now)
                state.withLock { $0.pruned = now }
            }
        } catch {
            logger.warning("cannot read the tenants' limits; keeping the last ones", metadata: ["error": "\(error)"])
            return
        }
        state.withLock { s in
            var byID: [Int64: TenantLimitsStore.Entry] = [:]
            for e in entries {
                byID[e.tenant.rawValue] = e
                // A quota that changed may have room now: forget what this node knew.
                if s.byID[e.tenant.rawValue]?.limits != e.limits { s.overQuota[e.tenant.description] = nil }
            }
            s.byID = byID
            s.byName = Dictionary(entries.map { ($0.name.lowercased(), $0) }, uniquingKeysWith: { a, _ in a })
            s.loaded = Date()
        }
        await queueManager?.setTenantLimits(Dictionary(uniqueKeysWithValues: entries.map {
            ($0.tenant.description, TenantDeliveryLimits(name: $0.name, rate: $0.limits.rate,
                                                         maxConnections: $0.limits.maxConnections))
        }))
    }

    public func run() async throws {
        guard store != nil else { return }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: self.interval) } catch { return }
                await self.refresh()
            }
        }
    }

    /// The tag of mail of the tenant named `name`, from what was last read.
    func tag(forTenantNamed name: String) -> String? {
        state.withLock { s in s.byName[name.lowercased()].map { $0.tenant.description } }
    }

    public func tenant(ofUser user: String) async -> String? {
        guard let name = users[user] else { return await databaseUsers?.tenant(ofUser: user)?.description }
        if let tag = tag(forTenantNamed: name) { return tag }
        // A database tenant made since the last read would be tagged by name: read again
        // first (at most once a second).
        if store != nil, state.withLock({ Date().timeIntervalSince($0.loaded) }) >= 1 {
            await refresh()
            if let tag = tag(forTenantNamed: name) { return tag }
        }
        return name
    }

    public func admit(tenant tag: String, recipients: Int) async -> SubmissionAdmission {
        guard let store, let id = Int64(tag),
              state.withLock({ $0.byID[id]?.limits.quotaWindows.isEmpty == false }) else { return .admitted(release: nil) }
        let tenant = TenantID(id)
        do {
            let decision = try await store.reserve(tenant: tenant, count: recipients)
            if decision.allowed {
                guard decision.counted else { return .admitted(release: nil) }
                let logger = self.logger
                return .admitted(release: {
                    do {
                        try await store.release(tenant: tenant, count: decision.granted, minute: decision.minute)
                    } catch {
                        logger.warning("cannot give back a quota count", metadata: ["tenant": "\(tag)", "error": "\(error)"])
                    }
                })
            }
            // Remembered for RCPT only while not even one more message fits.
            let one = try await store.reserve(tenant: tenant, count: 1, partial: true, dryRun: true)
            if one.granted == 0, let until = one.retryAt {
                state.withLock { $0.overQuota[tag] = (one, until) }
            }
            return .refused(Self.reply(decision))
        } catch {
            logger.error("cannot count a message against its tenant's quota; accepted uncounted",
                         metadata: ["tenant": "\(tag)", "error": "\(error)"])
            return .admitted(release: nil)
        }
    }

    public func knownRefusal(forUser user: String) -> SMTPReply? {
        let now = Date()
        let databaseTag = users[user] == nil ? databaseUsers?.knownTenant(ofUser: user)?.description : nil
        return state.withLock { s -> SMTPReply? in
            let tag: String
            if let name = users[user] {
                tag = s.byName[name.lowercased()].map { $0.tenant.description } ?? name
            } else if let databaseTag {
                tag = databaseTag
            } else {
                return nil
            }
            guard let known = s.overQuota[tag] else { return nil }
            guard known.until > now else {
                s.overQuota[tag] = nil
                return nil
            }
            return Self.reply(known.decision, now: now)
        }
    }

    /// `452 4.7.1` (RFC 3463: delivery not authorized, a policy refusal) with the reason.
    static func reply(_ decision: QuotaDecision, now: Date = Date()) -> SMTPReply {
        SMTPReply(452, EnhancedStatusCode(4, 7, 1), "Quota exceeded: " + decision.explanation(now: now))
    }
}
